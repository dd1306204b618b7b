//! `lmtrain export`: a checkpoint as a Hugging Face GPT-2 directory.
//!
//! DIR gets `model.safetensors` (lmtrain's parameter names are GPT-2's; F32; the LM head tied
//! and not stored; every embedding row kept, including padding rows beyond the tokenizer's
//! vocabulary, so `vocab_size` in config.json is the model's), `config.json`, the run's
//! `tokenizer.json` byte for byte, `tokenizer_config.json` and `special_tokens_map.json` (so
//! that `AutoTokenizer` encodes and decodes exactly as lmtrain does), and a `README.md` saying
//! what was exported. Every file is written atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::hf_config::to_config_json;
use super::hf_weights::serialize_f32;
use super::host_model::{run_dir_of, HostModel};
use crate::data::tokenizer::EOT;
use crate::fsutil::write_atomic;

/// What was written.
#[derive(Debug)]
pub struct ExportSummary {
    pub out: PathBuf,
    pub files: Vec<&'static str>,
}

/// `tokenizer_config.json`. PreTrainedTokenizerFast runs tokenizer.json's pipeline as is (a
/// model-specific class may rebuild parts of it); no cleanup of spaces on decode, no prefix
/// space, no BOS/EOS added on encode — lmtrain's own conventions.
fn tokenizer_config(model_max_length: usize) -> serde_json::Value {
    serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "add_prefix_space": false,
        "add_bos_token": false,
        "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": model_max_length,
    })
}

fn special_tokens_map() -> serde_json::Value {
    serde_json::json!({ "bos_token": EOT, "eos_token": EOT, "unk_token": EOT })
}

fn pretty(v: &serde_json::Value) -> Result<Vec<u8>> {
    let mut s = serde_json::to_string_pretty(v).context("cannot serialize JSON")?;
    s.push('\n');
    Ok(s.into_bytes())
}

/// The README of an export: what run, which weights, how good, how to load.
fn readme(model: &HostModel) -> String {
    let s = &model.gpt.shape;
    let mut lines = vec!["# GPT-2 exported by lmtrain".to_string(), String::new()];
    let (source, step_line, weights, val) = match &model.checkpoint {
        Some(c) => {
            let run = run_dir_of(&c.path);
            let run_name = run
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| run.display().to_string());
            let val = if c.ema {
                c.meta.val_loss_ema
            } else {
                c.meta.val_loss_raw
            };
            (
                format!("run `{run_name}`, checkpoint `{}`", c.path.display()),
                format!("{} ({} training tokens)", c.meta.step, c.meta.tokens),
                if c.ema {
                    "EMA of iterates"
                } else {
                    "raw (the last iterate)"
                },
                val.map_or_else(|| "not measured".to_string(), |v| format!("{v:.4}")),
            )
        }
        None => (
            model.description.clone(),
            "—".into(),
            "as imported",
            "not measured".into(),
        ),
    };
    lines.extend([
        format!("- source: {source}"),
        format!("- step: {step_line}"),
        format!("- weights: {weights}"),
        format!("- validation loss of these weights (nats/token): {val}"),
        format!(
            "- model: {} layers, {} heads, width {}, context {}, vocabulary {} (tokenizer: {} tokens), `activation_function = \"{}\"`",
            s.n_layer,
            s.n_head,
            s.n_embd,
            s.block_size,
            s.vocab_size,
            model.tokenizer.vocab_size(),
            s.activation.hf_name()
        ),
        format!(
            "- written by lmtrain {} (git {})",
            env!("CARGO_PKG_VERSION"),
            env!("LMTRAIN_GIT_COMMIT")
        ),
        String::new(),
        "```python".into(),
        "from transformers import AutoTokenizer, GPT2LMHeadModel".into(),
        "model = GPT2LMHeadModel.from_pretrained(DIR)".into(),
        "tokenizer = AutoTokenizer.from_pretrained(DIR)".into(),
        "```".into(),
        String::new(),
        format!(
            "`{EOT}` (id {}) is the document separator, BOS and EOS. Text is encoded as is (no token is added in front), and decoding cleans up no spaces.",
            model.tokenizer.eot_id()
        ),
    ]);
    if s.vocab_size > model.tokenizer.vocab_size() {
        lines.push(format!(
            "The embedding keeps its {} padding rows (ids {}..{}): the tokenizer never produces them and lmtrain never samples them; mask them out when sampling with transformers (e.g. `logits[..., {}:] = -inf`).",
            s.vocab_size - model.tokenizer.vocab_size(),
            model.tokenizer.vocab_size(),
            s.vocab_size - 1,
            model.tokenizer.vocab_size()
        ));
    }
    lines.push(String::new());
    lines.join("\n")
}

/// Writes `model` as a Hugging Face GPT-2 directory `out` (created if needed; files of the same
/// names are replaced).
pub fn export(model: &HostModel, out: &Path) -> Result<ExportSummary> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the export directory {}", out.display()))?;
    let tokenizer_json = std::fs::read(&model.tokenizer_path)
        .with_context(|| format!("cannot read {}", model.tokenizer_path.display()))?;
    let files: Vec<(&'static str, Vec<u8>)> = vec![
        (
            "model.safetensors",
            serialize_f32(model.gpt.specs(), &model.params)?,
        ),
        (
            "config.json",
            pretty(&to_config_json(&model.gpt.shape, model.tokenizer.eot_id()))?,
        ),
        ("tokenizer.json", tokenizer_json),
        (
            "tokenizer_config.json",
            pretty(&tokenizer_config(model.gpt.shape.block_size))?,
        ),
        ("special_tokens_map.json", pretty(&special_tokens_map())?),
        ("README.md", readme(model).into_bytes()),
    ];
    for (name, bytes) in &files {
        write_atomic(&out.join(name), bytes)
            .with_context(|| format!("exporting to {}", out.display()))?;
    }
    Ok(ExportSummary {
        out: out.to_path_buf(),
        files: files.into_iter().map(|(n, _)| n).collect(),
    })
}
