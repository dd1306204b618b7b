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
    /// Token ids of equally long rows, as one `[rows, len]` batch.
    fn ids(&self, rows: &[&[u32]]) -> Tensor<2, Int> {
        let len = rows.first().map_or(0, |r| r.len());
        let ids: Vec<i64> = rows
            .iter()
            .flat_map(|r| r.iter().map(|&t| t as i64))
            .collect();
        Tensor::from_data(TensorData::new(ids, [rows.len(), len]), self.device)
    }

    /// Each row's last-position logits, restricted to the valid vocabulary (one device read for
    /// the whole batch).
    fn last(&self, logits: Tensor<3>) -> Result<Vec<Vec<f32>>> {
        let [b, n, v] = logits.dims();
        let keep = self.valid_vocab.min(v);
        let flat = logits
            .slice([0..b, n - 1..n, 0..keep])
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("cannot read logits: {e:?}"))?;
        Ok(flat.chunks(keep).map(<[f32]>::to_vec).collect())
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
        let mut out = self.generate_batch(&[prompt], max_new, &[*d], cached, keep_logits)?;
        Ok(out.remove(0))
    }

    /// Generates for several prompts of the same length at once, row `r` decoding with
    /// `decodings[r]` (its own seeded RNG), as one batch on the device: each step is one forward
    /// of all rows and one read of their logits, instead of one per row. Every row gets exactly
    /// what [`generate`](Self::generate) would give it alone (rows never see each other); a row
    /// that meets end-of-text leaves the batch while the others go on.
    pub fn generate_batch(
        &self,
        prompts: &[&[u32]],
        max_new: usize,
        decodings: &[Decoding],
        cached: bool,
        keep_logits: bool,
    ) -> Result<Vec<Generation>> {
        if prompts.len() != decodings.len() {
            bail!(
                "{} prompts but {} decodings",
                prompts.len(),
                decodings.len()
            );
        }
        let mut rngs: Vec<_> = decodings
            .iter()
            .map(|d| rand_chacha::ChaCha8Rng::seed_from_u64(d.seed))
            .collect();
        let mut window = Window::start(self, prompts, cached)?;
        let mut out: Vec<Generation> = prompts
            .iter()
            .map(|_| Generation {
                tokens: Vec::new(),
                logits: Vec::new(),
            })
            .collect();
        // active[w] is the prompt that row w of the window generates for.
        let mut active: Vec<usize> = (0..prompts.len()).collect();
        for i in 0..max_new {
            let mut still = Vec::with_capacity(active.len());
            let mut next = Vec::with_capacity(active.len());
            for (w, &r) in active.iter().enumerate() {
                let tok = pick(&window.logits[w], &decodings[r], &mut rngs[r]);
                if keep_logits {
                    out[r].logits.push(window.logits[w].clone());
                }
                if tok != self.eot {
                    out[r].tokens.push(tok);
                    still.push(w);
                    next.push(tok);
                }
            }
            if still.is_empty() || i + 1 == max_new {
                break;
            }
            if still.len() < active.len() {
                // Finished rows leave the batch, so they cost nothing from here on.
                window.keep_rows(self, &still);
                active = still.iter().map(|&w| active[w]).collect();
            }
            window.push(self, &next)?;
        }
        Ok(out)
    }

    /// The negative log-likelihood (nats) of each token of `continuation` after `prompt`, under
    /// the same context policy as generation: how a judge model scores another model's text.
    pub fn score(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<f64>> {
        let mut window = Window::start(self, &[prompt], true)?;
        let mut nll = Vec::with_capacity(continuation.len());
        for (i, &tok) in continuation.iter().enumerate() {
            let logits = &window.logits[0];
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
                window.push(self, &[tok])?;
            }
        }
        Ok(nll)
    }
}

/// The tokens each row currently sees (rows always have the same length, so they share one
/// window start and one batched KV cache), and each row's next-token logits.
struct Window {
    contexts: Vec<Vec<u32>>,
    start: usize,
    cache: Option<KvCache>,
    logits: Vec<Vec<f32>>,
}

impl Window {
    fn start(g: &Generator, prompts: &[&[u32]], cached: bool) -> Result<Self> {
        let len = prompts.first().map_or(0, |p| p.len());
        if len == 0 {
            bail!("the prompt is empty");
        }
        if prompts.iter().any(|p| p.len() != len) {
            bail!("a batch of generations needs prompts of one length");
        }
        let block = g.gpt.shape.block_size;
        let start = if len > block {
            len - (block / 2).max(1)
        } else {
            0
        };
        let mut w = Self {
            contexts: prompts.iter().map(|p| p.to_vec()).collect(),
            start,
            cache: cached.then(|| KvCache::new(g.gpt)),
            logits: Vec::new(),
        };
        w.refill(g)?;
        Ok(w)
    }

    /// Runs the whole window (a prefill with the cache, a full forward without).
    fn refill(&mut self, g: &Generator) -> Result<()> {
        let rows: Vec<&[u32]> = self.contexts.iter().map(|c| &c[self.start..]).collect();
        let ids = g.ids(&rows);
        self.logits = match &mut self.cache {
            Some(cache) => {
                *cache = KvCache::new(g.gpt);
                g.last(g.gpt.forward_cached(g.params, ids, cache))?
            }
            None => g.last(g.gpt.forward(g.params, ids, 0.0))?,
        };
        Ok(())
    }

    /// Keeps only the rows `rows` (window indices, in order) of the contexts, logits and cache.
    fn keep_rows(&mut self, g: &Generator, rows: &[usize]) {
        self.contexts = rows.iter().map(|&w| self.contexts[w].clone()).collect();
        self.logits = rows.iter().map(|&w| self.logits[w].clone()).collect();
        if let Some(cache) = &mut self.cache {
            let idx: Vec<i64> = rows.iter().map(|&w| w as i64).collect();
            cache.keep_rows(Tensor::from_data(
                TensorData::new(idx, [rows.len()]),
                g.device,
            ));
        }
    }

    /// Appends one token to every row: one cached step, or — when the window would exceed
    /// block_size — a restart from the newest block_size / 2 tokens.
    fn push(&mut self, g: &Generator, toks: &[u32]) -> Result<()> {
        for (c, &t) in self.contexts.iter_mut().zip(toks) {
            c.push(t);
        }
        let len = self.contexts[0].len();
        let block = g.gpt.shape.block_size;
        if len - self.start > block {
            self.start = len - (block / 2).max(1);
            return self.refill(g);
        }
        match &mut self.cache {
            Some(cache) => {
                let step: Vec<[u32; 1]> = toks.iter().map(|&t| [t]).collect();
                let rows: Vec<&[u32]> = step.iter().map(|t| &t[..]).collect();
                self.logits = g.last(g.gpt.forward_cached(g.params, g.ids(&rows), cache))?;
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
        let gpt = Gpt::new(GptShape::tiny());
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

    /// Over steps, the largest |x − y| relative to the step's largest |y|.
    fn max_relative_error(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                let scale = y.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
                let diff = x
                    .iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs() as f64)
                    .fold(0.0, f64::max);
                diff / scale
            })
            .fold(0.0, f64::max)
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
        let worst = max_relative_error(&a.logits, &b.logits);
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

    /// A batch gives every row what generating it alone gives: greedy and sampled rows, through
    /// re-prefills (block 16, 40 new tokens), with one row stopping early at end-of-text.
    #[test]
    fn batched_generation_matches_one_at_a_time() {
        let (gpt, params, device) = tiny();
        let probe = unbounded(&gpt, &params, &device);
        let prompts: [&[u32]; 3] = [&[5, 9, 1, 33], &[2, 2, 7, 60], &[40, 3, 12, 8]];
        let decodings = [
            GREEDY,
            Decoding {
                temperature: 1.0,
                top_k: 0,
                seed: 7,
            },
            Decoding {
                temperature: 0.8,
                top_k: 5,
                seed: 8,
            },
        ];
        // End-of-text is a token the greedy row produces at step 12, so that row stops early.
        let free = probe
            .generate(prompts[0], 40, &GREEDY, true, false)
            .unwrap();
        let g = Generator {
            eot: free.tokens[12],
            ..probe
        };
        for cached in [true, false] {
            let batch = g
                .generate_batch(&prompts, 40, &decodings, cached, true)
                .unwrap();
            let mut worst = 0.0f64;
            for (r, got) in batch.iter().enumerate() {
                let alone = g
                    .generate(prompts[r], 40, &decodings[r], cached, true)
                    .unwrap();
                assert_eq!(got.tokens, alone.tokens, "row {r}, cached {cached}");
                worst = worst.max(max_relative_error(&got.logits, &alone.logits));
            }
            assert!(batch[0].tokens.len() <= 12, "the greedy row stops early");
            let lens: Vec<usize> = batch.iter().map(|b| b.tokens.len()).collect();
            assert!(
                lens[1].max(lens[2]) > lens[0],
                "another row goes on: {lens:?}"
            );
            println!(
                "batched vs alone (cached {cached}): lengths {lens:?}, max relative logit error {worst:.3e}"
            );
            assert!(worst < 1e-5, "{worst}");
        }
        let err = g
            .generate_batch(&[&[1, 2], &[1, 2, 3]], 4, &[GREEDY, GREEDY], true, false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("one length"), "{err}");
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
            let logits = g
                .last(gpt.forward(&params, g.ids(&[&ctx]), 0.0))
                .unwrap()
                .remove(0);
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
