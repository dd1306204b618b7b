//! `lmtrain inspect PATH`: what a checkpoint holds, from its metadata alone (no tensor is
//! decoded), so it works on any checkpoint however large, and on files too damaged to train from.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::Config;
use crate::model::params::count;
use crate::model::{Gpt, GptShape};
use crate::train::checkpoint;

fn loss(v: Option<f64>) -> String {
    v.map_or_else(|| "not measured".to_string(), |v| format!("{v:.4}"))
}

/// A human-readable report on the checkpoint at `path` (a file, or a run directory meaning its
/// latest checkpoint). Foreign, old or damaged files are errors that say what they are.
pub fn inspect(path: &Path) -> Result<String> {
    if path.is_dir()
        && path.join("config.json").is_file()
        && path.join("model.safetensors").is_file()
        && !path.join("checkpoints").is_dir()
    {
        bail!(
            "{} is a Hugging Face model directory, not an lmtrain checkpoint: read it with `lmtrain sample --hf` or `lmtrain logits --hf`",
            path.display()
        );
    }
    let file = checkpoint::resolve(path)?;
    // The whole file is read, so that a damaged checkpoint is reported here too.
    let meta = checkpoint::verify(&file)?;
    let mut out = vec![
        format!("checkpoint: {}", file.display()),
        format!("format: {} version {}", meta.format, meta.version),
        format!("step: {}", meta.step),
        format!("tokens seen: {}", meta.tokens),
        format!("val loss (raw): {}", loss(meta.val_loss_raw)),
        format!("val loss (EMA): {}", loss(meta.val_loss_ema)),
        format!(
            "EMA weights: {}",
            match (meta.has_ema, is_bema(&meta.config)) {
                (false, _) => "absent",
                (true, false) => "present",
                (true, true) =>
                    "present, bias-corrected (ema.kind = \"bema\": `ema` holds α_t(θ_t − θ₀) + EMA_t; θ₀ in `ema0`, the plain EMA in `ema_plain`)",
            }
        ),
    ];
    // The config is only needed for the model line; a config this lmtrain cannot parse is
    // reported, not fatal, since the rest of the report is still true.
    let bc = crate::config::kind_of_text(&meta.config) == crate::config::TaskKind::Bc;
    match toml::from_str::<Config>(&meta.config) {
        _ if bc && meta.task_info.is_null() => out.push(
            "task: behaviour cloning, the linear-system testbed (its rollout costs are in metrics.jsonl)"
                .to_string(),
        ),
        _ if bc => out.push(format!(
            "task: behaviour cloning, {} (policy {}); evaluate with `lmtrain rollout --checkpoint`",
            meta.task_info,
            meta.config
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("policy").map(|p| p.to_string()))
                .unwrap_or_default()
                .replace('\n', " ")
        )),
        Ok(c) => {
            let gpt = Gpt::new(GptShape::from(&c.model));
            let n = count(gpt.specs());
            out.push(format!(
                "model: {} layers, {} heads, width {}, context {}, vocabulary {}, {} GELU — {n} parameters ({:.2}M)",
                c.model.n_layer,
                c.model.n_head,
                c.model.n_embd,
                c.model.block_size,
                c.model.vocab_size,
                c.model.activation.hf_name(),
                n as f64 / 1e6
            ));
        }
        Err(e) => out.push(format!(
            "model: the stored config does not parse here ({e})"
        )),
    }
    out.push(format!("data cursor: {}", meta.cursor));
    out.push(format!(
        "tokenizer sha256: {}",
        if meta.tokenizer_hash.is_empty() {
            "none"
        } else {
            &meta.tokenizer_hash
        }
    ));
    out.push("config:".into());
    out.extend(meta.config.lines().map(|l| format!("  {l}")));
    out.push(String::new());
    Ok(out.join("\n"))
}

/// Whether a stored config's `[ema]` is the bias-corrected kind.
fn is_bema(config: &str) -> bool {
    toml::from_str::<toml::Value>(config)
        .ok()
        .and_then(|v| v.get("ema")?.get("kind")?.as_str().map(|k| k == "bema"))
        .unwrap_or(false)
}
