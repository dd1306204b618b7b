//! Sampling from a checkpoint or a Hugging Face GPT-2 directory: greedy (temperature 0) or
//! temperature with top-k, from a seed.
//!
//! The prompt is encoded as is (no BOS or end-of-text in front). Generation stops at
//! end-of-text, which is not printed. Only ids the tokenizer knows are ever sampled: rows of a
//! vocabulary padded beyond the tokenizer's are masked out.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};

use crate::data::tokenizer::TextTokenizer;
use crate::interop::host_model::{HostModel, ModelSource};
use crate::model::params::upload;
use crate::model::Gpt;

/// How to pick each next token.
#[derive(Clone, Copy, Debug)]
pub struct Decoding {
    /// 0 means greedy.
    pub temperature: f64,
    /// 0 means no top-k restriction.
    pub top_k: usize,
    pub seed: u64,
}

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

/// Picks the next token from `logits` (already restricted to valid ids).
pub fn pick(logits: &[f32], d: &Decoding, rng: &mut impl Rng) -> u32 {
    if d.temperature <= 0.0 {
        // Greedy; ties go to the lowest id, as torch.argmax does.
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    if d.top_k > 0 && d.top_k < logits.len() {
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        order.truncate(d.top_k);
    }
    let max = order
        .iter()
        .map(|&i| logits[i] as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / d.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (w, &i) in weights.iter().zip(&order) {
        u -= w;
        if u <= 0.0 {
            return i as u32;
        }
    }
    order[order.len() - 1] as u32
}

impl LoadedModel {
    /// Next-token logits for the last position of `context` (cropped to block_size), restricted
    /// to the tokenizer's vocabulary.
    pub fn next_logits(&self, context: &[u32]) -> Result<Vec<f32>> {
        let bs = self.gpt.shape.block_size;
        let ctx = &context[context.len().saturating_sub(bs)..];
        let ids: Vec<i64> = ctx.iter().map(|&t| t as i64).collect();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, ctx.len()]), &self.device);
        let logits = self.gpt.forward(&self.params, idx, 0.0);
        let v = self.gpt.shape.vocab_size;
        let last = logits
            .slice([0..1, ctx.len() - 1..ctx.len(), 0..v])
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("cannot read logits: {e:?}"))?;
        Ok(last[..self.tokenizer.vocab_size().min(v)].to_vec())
    }

    /// Generates up to `max_tokens` after `prompt`; returns the continuation's ids (without the
    /// end-of-text token that stopped it, if any).
    pub fn generate(&self, prompt: &[u32], max_tokens: usize, d: &Decoding) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            bail!("the prompt is empty: give --prompt some text");
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(d.seed);
        let mut context = prompt.to_vec();
        let mut out = Vec::new();
        for _ in 0..max_tokens {
            let logits = self.next_logits(&context)?;
            let next = pick(&logits, d, &mut rng);
            if next == self.tokenizer.eot_id() {
                break;
            }
            context.push(next);
            out.push(next);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let d = Decoding {
            temperature: 0.0,
            top_k: 0,
            seed: 0,
        };
        assert_eq!(pick(&[0.1, 3.0, -1.0, 3.0], &d, &mut rng), 1);
    }

    #[test]
    fn top_k_never_leaves_the_top_k() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let d = Decoding {
            temperature: 5.0,
            top_k: 2,
            seed: 0,
        };
        let logits = [0.0, 1.0, 0.5, 0.9, 0.2];
        for _ in 0..500 {
            let t = pick(&logits, &d, &mut rng);
            assert!(t == 1 || t == 3, "{t}");
        }
    }

    #[test]
    fn sampling_follows_the_softmax() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let d = Decoding {
            temperature: 1.0,
            top_k: 0,
            seed: 0,
        };
        let logits = [0.0f32, (3.0f32).ln()];
        let n = 20_000;
        let ones = (0..n).filter(|_| pick(&logits, &d, &mut rng) == 1).count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.02, "{frac}");
    }
}
