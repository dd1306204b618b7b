//! `model.init_from = "hf:DIR"`: a new run starts from a Hugging Face GPT-2's weights (to
//! fine-tune it) instead of a random init.
//!
//! The config still describes the model: its `model.*` keys must agree with DIR's config.json
//! (every mismatch is listed in one error), except that `block_size` may be smaller than
//! `n_positions` (the position table is then cut to its first `block_size` rows, which changes
//! nothing for contexts that short). The run tokenizes with DIR's tokenizer.json: the config
//! resolves `tokenizer.path` to it when unset, and any other tokenizer is refused. A resumed run
//! takes its weights from its checkpoint, never from DIR.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::host_model::HostModel;
use crate::config::Config;
use crate::data::tokenizer::TextTokenizer;
use crate::model::HostParams;

/// The scheme of `model.init_from` for a Hugging Face directory.
pub const HF_PREFIX: &str = "hf:";

/// DIR of `"hf:DIR"`, or `None` when the value has another form.
pub fn parse_init_from(value: &str) -> Option<PathBuf> {
    value
        .strip_prefix(HF_PREFIX)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// The tokenizer a config with `init_from = "hf:DIR"` uses when it names none.
pub fn default_tokenizer_path(dir: &Path) -> PathBuf {
    dir.join("tokenizer.json")
}

/// Initial weights for a new run, with a line for the log.
pub struct InitWeights {
    pub params: HostParams,
    pub note: String,
}

/// Loads `model.init_from` when the config has one, after checking it against the config and the
/// run's tokenizer.
pub fn load_init_weights(
    config: &Config,
    tokenizer: &TextTokenizer,
) -> Result<Option<InitWeights>> {
    let Some(value) = &config.model.init_from else {
        return Ok(None);
    };
    let Some(dir) = parse_init_from(value) else {
        bail!(
            "model.init_from = {value:?}: write \"hf:DIR\" with DIR a Hugging Face GPT-2 directory"
        );
    };
    let hf =
        HostModel::from_hf_dir(&dir).with_context(|| format!("model.init_from = {value:?}"))?;
    let (m, h) = (&config.model, &hf.gpt.shape);
    let mut diffs = Vec::new();
    for (key, ours, theirs) in [
        ("n_layer", m.n_layer, h.n_layer),
        ("n_head", m.n_head, h.n_head),
        ("n_embd", m.n_embd, h.n_embd),
        ("vocab_size", m.vocab_size, h.vocab_size),
    ] {
        if ours != theirs {
            diffs.push(format!("model.{key} = {ours} but config.json has {theirs}"));
        }
    }
    if m.activation != h.activation {
        diffs.push(format!(
            "model.activation = {:?} but config.json's activation_function is {:?}",
            m.activation.hf_name(),
            h.activation.hf_name()
        ));
    }
    if m.block_size > h.block_size {
        diffs.push(format!(
            "model.block_size = {} exceeds config.json's n_positions = {}",
            m.block_size, h.block_size
        ));
    }
    if !diffs.is_empty() {
        bail!(
            "model.init_from = {value:?} does not match the config: {}. Set the model keys to the imported model's",
            diffs.join("; ")
        );
    }
    if tokenizer.content_hash() != hf.tokenizer.content_hash() {
        bail!(
            "model.init_from = {value:?}: the run's tokenizer is not {}; remove tokenizer.path from the config (the run then uses that one) or point it there",
            hf.tokenizer_path.display()
        );
    }
    let mut params = hf.params;
    // wpe is [n_positions, n_embd], row-major: keep the rows the context can reach.
    if let Some(wpe) = hf
        .gpt
        .specs()
        .iter()
        .position(|s| s.name == "transformer.wpe.weight")
    {
        params[wpe].truncate(m.block_size * m.n_embd);
    }
    let cut = if m.block_size < h.block_size {
        format!(
            " (position table cut from {} to {} rows)",
            h.block_size, m.block_size
        )
    } else {
        String::new()
    };
    Ok(Some(InitWeights {
        params,
        note: format!("initial weights: {}{cut}", hf.description),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hf_dirs_parse() {
        assert_eq!(
            parse_init_from("hf:/x/gpt2"),
            Some(PathBuf::from("/x/gpt2"))
        );
        assert_eq!(parse_init_from("hf:"), None);
        assert_eq!(parse_init_from("/x/gpt2"), None);
        assert_eq!(parse_init_from("ckpt:/x"), None);
    }
}
