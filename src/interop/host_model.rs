//! A model's weights and tokenizer in host memory, from either source lmtrain reads: its own
//! checkpoints (raw or EMA weights) or a Hugging Face GPT-2 directory. Sampling, `logits` and
//! `export` start from here.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::hf_config::read_config_json;
use super::hf_weights::read_params;
use crate::config::Config;
use crate::data::tokenizer::TextTokenizer;
use crate::model::{Gpt, GptShape, HostParams};
use crate::train::checkpoint::{self, CheckpointMeta};

/// Where to load a model from.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A checkpoint file, or a run directory (its latest checkpoint); `ema` picks the EMA weights.
    Checkpoint { path: PathBuf, ema: bool },
    /// A Hugging Face GPT-2 directory: config.json, model.safetensors, tokenizer.json.
    HfDir(PathBuf),
}

/// What a checkpoint-backed model remembers of its checkpoint.
#[derive(Clone, Debug)]
pub struct CheckpointOrigin {
    /// The resolved checkpoint file.
    pub path: PathBuf,
    pub meta: CheckpointMeta,
    pub ema: bool,
}

pub struct HostModel {
    pub gpt: Gpt,
    pub params: HostParams,
    pub tokenizer: TextTokenizer,
    pub tokenizer_path: PathBuf,
    /// Optimizer steps behind the weights (0 for a Hugging Face directory).
    pub step: u64,
    /// One line for logs: where the weights come from.
    pub description: String,
    /// Set for checkpoints, `None` for Hugging Face directories.
    pub checkpoint: Option<CheckpointOrigin>,
}

impl HostModel {
    pub fn load(source: &ModelSource) -> Result<Self> {
        match source {
            ModelSource::Checkpoint { path, ema } => Self::from_checkpoint(path, *ema),
            ModelSource::HfDir(dir) => Self::from_hf_dir(dir),
        }
    }

    /// Loads a checkpoint (a file, or a run directory meaning its latest), raw or EMA weights,
    /// with the tokenizer it was trained with (checked by hash).
    pub fn from_checkpoint(checkpoint_path: &Path, ema: bool) -> Result<Self> {
        let path = checkpoint::resolve(checkpoint_path)?;
        let meta = checkpoint::read_meta(&path)?;
        if crate::config::kind_of_text(&meta.config) == crate::config::TaskKind::Bc {
            bail!(
                "{} is a behaviour-cloning checkpoint: sample, export and logits work on language models; evaluate a policy with `lmtrain rollout --checkpoint {}`",
                path.display(),
                checkpoint_path.display()
            );
        }
        let config: Config = toml::from_str(&meta.config)
            .with_context(|| format!("{}: the stored config is unreadable", path.display()))?;
        let gpt = Gpt::new(GptShape::from(&config.model));
        let (meta, state) = checkpoint::load(&path, Some(gpt.specs()))?;
        let params = if ema {
            state.ema.ok_or_else(|| {
                anyhow!(
                    "{} has no EMA weights (ema.enabled was false); drop --ema",
                    path.display()
                )
            })?
        } else {
            state.params
        };
        let tokenizer_path = crate::lm::prepare::checkpoint_tokenizer(
            &run_dir_of(&path),
            &config,
            &meta.tokenizer_hash,
        )?;
        let tokenizer = TextTokenizer::load(&tokenizer_path)?;
        if !meta.tokenizer_hash.is_empty() && tokenizer.content_hash() != meta.tokenizer_hash {
            bail!(
                "the tokenizer {} is not the one {} was trained with (its hash differs); restore the run's tokenizer.json",
                tokenizer_path.display(),
                path.display()
            );
        }
        Ok(Self {
            gpt,
            params,
            tokenizer,
            tokenizer_path,
            step: meta.step,
            description: format!(
                "step {} ({} weights) of {}",
                meta.step,
                if ema { "EMA" } else { "raw" },
                path.display()
            ),
            checkpoint: Some(CheckpointOrigin { path, meta, ema }),
        })
    }

    /// Loads a Hugging Face GPT-2 directory (ours, exported, or e.g. GPT-2 124M).
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!(
                "{} is not a directory: --hf takes a Hugging Face GPT-2 directory (config.json, model.safetensors, tokenizer.json)",
                dir.display()
            );
        }
        let config = read_config_json(&dir.join("config.json"))?;
        let gpt = Gpt::new(config.shape);
        let params = read_params(&dir.join("model.safetensors"), gpt.specs(), config.tied)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = TextTokenizer::load(&tokenizer_path).with_context(|| {
            format!(
                "{}: lmtrain reads the tokenizer from tokenizer.json (vocab.json + merges.txt alone are not read)",
                dir.display()
            )
        })?;
        if tokenizer.vocab_size() > gpt.shape.vocab_size {
            bail!(
                "{}: tokenizer.json has {} tokens but config.json's vocab_size is {}",
                dir.display(),
                tokenizer.vocab_size(),
                gpt.shape.vocab_size
            );
        }
        Ok(Self {
            description: format!(
                "Hugging Face GPT-2 {} ({} GELU)",
                dir.display(),
                gpt.shape.activation.hf_name()
            ),
            gpt,
            params,
            tokenizer,
            tokenizer_path,
            step: 0,
            checkpoint: None,
        })
    }
}

/// The run directory of a checkpoint file (`RUN/checkpoints/ckpt-….safetensors`).
pub fn run_dir_of(ckpt: &Path) -> PathBuf {
    let dir = ckpt.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == "checkpoints") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}
