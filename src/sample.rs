//! Sampling from a checkpoint or a Hugging Face GPT-2 directory: greedy (temperature 0) or
//! temperature with top-k, from a seed.
//!
//! The prompt is encoded as is (no BOS or end-of-text in front). Generation stops at
//! end-of-text, which is not printed. Only ids the tokenizer knows are ever sampled: rows of a
//! vocabulary padded beyond the tokenizer's are masked out.

use std::path::Path;

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor};

pub use crate::generate::Decoding;
use crate::generate::Generator;

use crate::data::tokenizer::TextTokenizer;
use crate::interop::host_model::{HostModel, ModelSource};
use crate::model::params::upload;
use crate::model::Gpt;

/// A model loaded for inference: GPT, weights on the device, tokenizer.
pub struct LoadedModel {
    pub gpt: Gpt,
    pub params: Vec<Tensor<1>>,
    pub tokenizer: TextTokenizer,
    pub device: Device,
    pub step: u64,
    /// Where the weights come from, for logs.
    pub description: String,
}

/// Loads a checkpoint (a file, or a run directory meaning its latest), raw or EMA weights.
pub fn load_model(checkpoint_path: &Path, ema: bool, device: Device) -> Result<LoadedModel> {
    load_source(
        &ModelSource::Checkpoint {
            path: checkpoint_path.to_path_buf(),
            ema,
        },
        device,
    )
}

/// Loads a checkpoint or a Hugging Face GPT-2 directory onto `device`.
pub fn load_source(source: &ModelSource, device: Device) -> Result<LoadedModel> {
    let host = HostModel::load(source)?;
    Ok(LoadedModel {
        params: upload(host.gpt.specs(), &host.params, &device)?,
        gpt: host.gpt,
        tokenizer: host.tokenizer,
        device,
        step: host.step,
        description: host.description,
    })
}

impl LoadedModel {
    /// Generates up to `max_tokens` after `prompt` with the KV cache (or without, to compare);
    /// returns the continuation's ids, without the end-of-text token that stopped it, if any.
    pub fn generate_with(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        d: &Decoding,
        cached: bool,
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            bail!("the prompt is empty: give --prompt some text");
        }
        let g = Generator {
            gpt: &self.gpt,
            params: &self.params,
            device: &self.device,
            valid_vocab: self.tokenizer.vocab_size(),
            eot: self.tokenizer.eot_id(),
        };
        Ok(g.generate(prompt, max_tokens, d, cached, false)?.tokens)
    }

    /// [`generate_with`](Self::generate_with) using the KV cache.
    pub fn generate(&self, prompt: &[u32], max_tokens: usize, d: &Decoding) -> Result<Vec<u32>> {
        self.generate_with(prompt, max_tokens, d, true)
    }
}
