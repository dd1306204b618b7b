//! Autoregressive generation, with or without a KV cache, shared by `lmtrain sample` and the
//! long generations of the GVA evaluation.
//!
//! Learned absolute positions end at `block_size`, so a cache cannot simply slide. The context
//! policy, identical with and without the cache: the model sees a window of the newest tokens;
//! when appending a token would make the window longer than `block_size`, the window restarts
//! from the newest `block_size / 2` tokens (and the cache is re-prefilled from them). Within a
//! window each new token costs one cached step — attention over the window — not a re-forward.

use anyhow::{anyhow, bail, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};

use crate::model::{Gpt, KvCache};

/// How to pick each next token.
#[derive(Clone, Copy, Debug)]
pub struct Decoding {
    /// 0 means greedy.
    pub temperature: f64,
    /// 0 means no top-k restriction.
    pub top_k: usize,
    pub seed: u64,
}

/// A model ready to generate: its weights on a device and what the tokenizer allows.
pub struct Generator<'a> {
    pub gpt: &'a Gpt,
    pub params: &'a [Tensor<1>],
    pub device: &'a Device,
    /// Ids ≥ this (rows of a vocabulary padded past the tokenizer's) are never produced.
    pub valid_vocab: usize,
    /// Generation stops here; the token is not returned.
    pub eot: u32,
}

/// A generation and, when asked for, the logits each token was picked from.
pub struct Generation {
    pub tokens: Vec<u32>,
    pub logits: Vec<Vec<f32>>,
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

impl Generator<'_> {
    fn ids(&self, tokens: &[u32]) -> Tensor<2, Int> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        Tensor::from_data(TensorData::new(ids, [1, tokens.len()]), self.device)
    }

    /// The last position's logits, restricted to the valid vocabulary (one device read).
    fn last(&self, logits: Tensor<3>) -> Result<Vec<f32>> {
        let [_, n, v] = logits.dims();
        let keep = self.valid_vocab.min(v);
        logits
            .slice([0..1, n - 1..n, 0..keep])
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("cannot read logits: {e:?}"))
    }

    /// Generates up to `max_new` tokens after `prompt`. `cached` selects the KV cache;
    /// `keep_logits` records the logits of every step (for tests and checks).
    pub fn generate(
        &self,
        prompt: &[u32],
        max_new: usize,
        d: &Decoding,
        cached: bool,
        keep_logits: bool,
    ) -> Result<Generation> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(d.seed);
        let mut window = Window::start(self, prompt, cached)?;
        let mut out = Generation {
            tokens: Vec::new(),
            logits: Vec::new(),
        };
        for i in 0..max_new {
            let next = pick(&window.logits, d, &mut rng);
            if keep_logits {
                out.logits.push(window.logits.clone());
            }
            if next == self.eot {
                break;
            }
            out.tokens.push(next);
            if i + 1 < max_new {
                window.push(self, next)?;
            }
        }
        Ok(out)
    }

    /// The negative log-likelihood (nats) of each token of `continuation` after `prompt`, under
    /// the same context policy as generation: how a judge model scores another model's text.
    pub fn score(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<f64>> {
        let mut window = Window::start(self, prompt, true)?;
        let mut nll = Vec::with_capacity(continuation.len());
        for (i, &tok) in continuation.iter().enumerate() {
            let logits = &window.logits;
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + logits
                    .iter()
                    .map(|&l| (l as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            let l = logits.get(tok as usize).copied().ok_or_else(|| {
                anyhow!(
                    "token {tok} is outside the judge's vocabulary ({})",
                    logits.len()
                )
            })?;
            nll.push(lse - l as f64);
            if i + 1 < continuation.len() {
                window.push(self, tok)?;
            }
        }
        Ok(nll)
    }
}

/// The tokens the model currently sees, the KV cache over them, and the next-token logits.
struct Window {
    context: Vec<u32>,
    start: usize,
    cache: Option<KvCache>,
    logits: Vec<f32>,
}

impl Window {
    fn start(g: &Generator, prompt: &[u32], cached: bool) -> Result<Self> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        let block = g.gpt.shape.block_size;
        let start = if prompt.len() > block {
            prompt.len() - (block / 2).max(1)
        } else {
            0
        };
        let mut w = Self {
            context: prompt.to_vec(),
            start,
            cache: cached.then(|| KvCache::new(g.gpt)),
            logits: Vec::new(),
        };
        w.refill(g)?;
        Ok(w)
    }

    /// Runs the whole window (a prefill with the cache, a full forward without).
    fn refill(&mut self, g: &Generator) -> Result<()> {
        let ids = g.ids(&self.context[self.start..]);
        self.logits = match &mut self.cache {
            Some(cache) => {
                *cache = KvCache::new(g.gpt);
                g.last(g.gpt.forward_cached(g.params, ids, cache))?
            }
            None => g.last(g.gpt.forward(g.params, ids, 0.0))?,
        };
        Ok(())
    }

    /// Appends `tok`: one cached step, or — when the window would exceed block_size — a restart
    /// from the newest block_size / 2 tokens.
    fn push(&mut self, g: &Generator, tok: u32) -> Result<()> {
        self.context.push(tok);
        let block = g.gpt.shape.block_size;
        if self.context.len() - self.start > block {
            self.start = self.context.len() - (block / 2).max(1);
            return self.refill(g);
        }
        match &mut self.cache {
            Some(cache) => {
                self.logits = g.last(g.gpt.forward_cached(g.params, g.ids(&[tok]), cache))?;
                Ok(())
            }
            None => self.refill(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::upload;
    use crate::model::GptShape;

    fn tiny() -> (Gpt, Vec<Tensor<1>>, Device) {
        let gpt = Gpt::new(GptShape {
            n_layer: 2,
            n_head: 2,
            n_embd: 32,
            block_size: 16,
            vocab_size: 64,
            dropout: 0.0,
            activation: Default::default(),
        });
        let device = Device::flex();
        // Larger-than-init weights so that logits are far from uniform and greedy has margin.
        let mut host = gpt.init(3);
        for (v, s) in host.iter_mut().zip(gpt.specs()) {
            if s.shape.len() == 2 {
                v.iter_mut().for_each(|x| *x *= 20.0);
            }
        }
        let params = upload(gpt.specs(), &host, &device).unwrap();
        (gpt, params, device)
    }

    const GREEDY: Decoding = Decoding {
        temperature: 0.0,
        top_k: 0,
        seed: 0,
    };

    /// A generator over the whole vocabulary that never meets end-of-text.
    fn unbounded<'a>(gpt: &'a Gpt, params: &'a [Tensor<1>], device: &'a Device) -> Generator<'a> {
        Generator {
            gpt,
            params,
            device,
            valid_vocab: 64,
            eot: u32::MAX,
        }
    }

    /// Cached and uncached generation see the same windows, so their logits agree at every
    /// step — across two window restarts (3× block_size tokens).
    #[test]
    fn cached_and_uncached_logits_agree() {
        let (gpt, params, device) = tiny();
        let g = unbounded(&gpt, &params, &device);
        let d = GREEDY;
        let prompt = [5, 9, 1, 33];
        let a = g.generate(&prompt, 48, &d, true, true).unwrap();
        let b = g.generate(&prompt, 48, &d, false, true).unwrap();
        assert_eq!(a.tokens.len(), 48);
        assert_eq!(a.tokens, b.tokens);
        let mut worst = 0.0f64;
        for (x, y) in a.logits.iter().zip(&b.logits) {
            let scale = y.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
            let diff = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs() as f64)
                .fold(0.0, f64::max);
            worst = worst.max(diff / scale);
        }
        println!("cached vs uncached logits: max relative error {worst:.3e}");
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn stops_at_end_of_text_without_returning_it() {
        let (gpt, params, device) = tiny();
        let probe = unbounded(&gpt, &params, &device);
        let d = GREEDY;
        let free = probe.generate(&[1, 2], 10, &d, true, false).unwrap().tokens;
        let stop = Generator {
            eot: free[3],
            ..probe
        };
        let cut = stop.generate(&[1, 2], 10, &d, true, false).unwrap().tokens;
        assert_eq!(cut, free[..3].to_vec());
    }

    /// The judge's NLL of a continuation equals −log softmax of the uncached logits.
    #[test]
    fn score_is_the_negative_log_likelihood() {
        let (gpt, params, device) = tiny();
        let g = unbounded(&gpt, &params, &device);
        let prompt = [3, 4];
        let cont = [7, 9, 11, 2];
        let nll = g.score(&prompt, &cont).unwrap();
        for (i, &tok) in cont.iter().enumerate() {
            let ctx: Vec<u32> = prompt.iter().chain(&cont[..i]).copied().collect();
            let logits = g.last(gpt.forward(&params, g.ids(&ctx), 0.0)).unwrap();
            let lse = logits.iter().map(|&l| (l as f64).exp()).sum::<f64>().ln();
            let want = lse - logits[tok as usize] as f64;
            assert!(
                (nll[i] - want).abs() < 1e-4 * want.abs().max(1.0),
                "{} vs {want}",
                nll[i]
            );
        }
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let d = GREEDY;
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
