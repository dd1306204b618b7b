//! The paper's linear-system testbed (Block et al. 2024, §3; `configs/bc/linear.toml`): behaviour
//! cloning of a linear expert on a marginally stable system, where the amplification of
//! gradient noise by the closed loop can be seen in seconds.
//!
//! System: x_{t+1} = A x_t + u_t, with Q orthogonal (Gram-Schmidt of a Gaussian matrix), A =
//! `a_scale`·N(0, 1) and the expert K* = Q − A, so that the expert's closed loop A + K* = Q has
//! every eigenvalue on the unit circle. Data: x ~ N(0, I), u = K* x + `noise`·N(0, I), generated
//! once. Policy: u = K x (the parameter `policy.k` holds Kᵀ, `[in, out]` as every lmtrain
//! weight). BC loss: the mean over pairs of ‖K x − u‖² (summed over coordinates, as the
//! reference; the MLP task averages over them instead). Long-horizon evaluation:
//! for each H in `eval.horizons`, the cost J_H(K) = (1/H) Σ_{t=1..H} ‖x_t‖² from a fixed
//! unit-norm x₀ under x_{t+1} = (A + K) x_t (the expert's is 1), logged as
//! `rollout_cost_h<H>_<weights>`. `../shared/reference/linear_gva_toy.py` is the numpy original
//! this follows (its oscillation indices are quoted in the tests).

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::minibatch::Minibatches;
use super::task::{BcBatch, Pairs};
use crate::config::{BcEvalConfig, LinearConfig};
use crate::model::params::download;
use crate::model::{HostParams, ParamSpec};
use crate::train::Task;

/// A d×d matrix, row-major, in f64.
type Matrix = Vec<f64>;

fn gaussian(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// The Q of a QR decomposition of a d×d matrix, by modified Gram-Schmidt on its columns (d is
/// small and the matrix well conditioned with probability one; no linear-algebra dependency is
/// worth one orthogonalisation).
fn orthogonalize(m: &[f64], d: usize) -> Result<Matrix> {
    let mut cols: Vec<Vec<f64>> = (0..d)
        .map(|j| (0..d).map(|i| m[i * d + j]).collect())
        .collect();
    for j in 0..d {
        for k in 0..j {
            let ck = cols[k].clone();
            let dot: f64 = cols[j].iter().zip(&ck).map(|(a, b)| a * b).sum();
            for (v, c) in cols[j].iter_mut().zip(&ck) {
                *v -= dot * c;
            }
        }
        let norm = cols[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm < 1e-9 {
            bail!("the random matrix is singular; change linear.system_seed");
        }
        cols[j].iter_mut().for_each(|v| *v /= norm);
    }
    let mut q = vec![0.0; d * d];
    for (j, c) in cols.iter().enumerate() {
        for i in 0..d {
            q[i * d + j] = c[i];
        }
    }
    Ok(q)
}

fn mat_vec(m: &[f64], x: &[f64]) -> Vec<f64> {
    let d = x.len();
    (0..d)
        .map(|i| (0..d).map(|j| m[i * d + j] * x[j]).sum())
        .collect()
}

/// The system, its expert and the fixed rollout start.
#[derive(Clone, Debug)]
pub struct LinearSystem {
    pub dim: usize,
    pub a: Matrix,
    pub k_star: Matrix,
    pub x0: Vec<f64>,
}

impl LinearSystem {
    pub fn new(cfg: &LinearConfig) -> Result<Self> {
        let d = cfg.dim;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.system_seed);
        let q = orthogonalize(&gaussian(&mut rng, d * d), d)?;
        let a: Matrix = gaussian(&mut rng, d * d)
            .into_iter()
            .map(|v| v * cfg.a_scale)
            .collect();
        let k_star = q.iter().zip(&a).map(|(q, a)| q - a).collect();
        let mut x0 = gaussian(&mut rng, d);
        let n = x0.iter().map(|v| v * v).sum::<f64>().sqrt();
        x0.iter_mut().for_each(|v| *v /= n);
        Ok(Self {
            dim: d,
            a,
            k_star,
            x0,
        })
    }

    /// J_H(K) = (1/H) Σ_{t=1..H} ‖x_t‖², x_{t+1} = (A + K) x_t, from x₀.
    pub fn cost(&self, k: &[f64], horizon: usize) -> f64 {
        let closed: Matrix = self.a.iter().zip(k).map(|(a, k)| a + k).collect();
        let mut x = self.x0.clone();
        let mut c = 0.0;
        for _ in 0..horizon {
            x = mat_vec(&closed, &x);
            c += x.iter().map(|v| v * v).sum::<f64>();
        }
        c / horizon as f64
    }

    /// `n` pairs (x ~ N(0, I), u = K* x + noise·ε) from `rng`, as f32 rows.
    fn pairs(&self, rng: &mut ChaCha8Rng, n: usize, noise: f64) -> Pairs {
        let d = self.dim;
        let (mut obs, mut actions) = (Vec::with_capacity(n * d), Vec::with_capacity(n * d));
        for _ in 0..n {
            let x = gaussian(rng, d);
            let u = mat_vec(&self.k_star, &x);
            for i in 0..d {
                obs.push(x[i] as f32);
                let e: f64 = StandardNormal.sample(rng);
                actions.push((u[i] + noise * e) as f32);
            }
        }
        Pairs {
            obs,
            actions,
            // Independent pairs: each is its own one-step "episode".
            t: vec![0; n],
            obs_dim: d,
            action_dim: d,
        }
    }
}

pub struct LinearTask {
    pub system: LinearSystem,
    cfg: LinearConfig,
    train: Pairs,
    val: Pairs,
    batch_size: usize,
    batches: Minibatches,
    horizons: Vec<usize>,
    every: u64,
    specs: Vec<ParamSpec>,
}

impl LinearTask {
    /// The system from `linear.system_seed`; the train and validation pairs from `seed`.
    pub fn new(
        cfg: &LinearConfig,
        eval: &BcEvalConfig,
        batch_size: usize,
        seed: u64,
    ) -> Result<Self> {
        let system = LinearSystem::new(cfg)?;
        let mut rng = ChaCha8Rng::seed_from_u64(crate::train::step::step_seed(seed, 0, 0x11));
        let train = system.pairs(&mut rng, cfg.samples, cfg.noise);
        let val = system.pairs(&mut rng, cfg.val_samples, cfg.noise);
        let d = cfg.dim;
        Ok(Self {
            system,
            cfg: cfg.clone(),
            batches: Minibatches::new(train.len(), seed),
            train,
            val,
            batch_size,
            horizons: eval.horizons.clone(),
            every: eval.rollout_every,
            specs: vec![ParamSpec::new("policy.k", &[d, d])],
        })
    }

    /// Lines for train.log.
    pub fn describe(&self) -> Vec<String> {
        vec![
            format!(
                "linear-system testbed: d = {}, A = {}·N(0, 1), K* = Q − A (A + K* orthogonal), label noise {}, {} train and {} validation pairs",
                self.cfg.dim, self.cfg.a_scale, self.cfg.noise, self.cfg.samples, self.cfg.val_samples
            ),
            format!(
                "policy: linear u = K x ({} parameters, from zero); rollout cost J_H from a fixed unit x₀ at H = {:?} every {} steps (the expert's is {:.4} at H = {})",
                self.cfg.dim * self.cfg.dim,
                self.horizons,
                self.every,
                self.horizons
                    .first()
                    .map_or(0.0, |&h| self.system.cost(&self.system.k_star, h)),
                self.horizons.first().copied().unwrap_or(0)
            ),
        ]
    }

    /// K (row-major, d×d) from the parameter, which holds Kᵀ.
    fn k_of(&self, w: &[f32]) -> Matrix {
        let d = self.cfg.dim;
        let mut k = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                k[j * d + i] = w[i * d + j] as f64;
            }
        }
        k
    }

    /// Over a batch of one-pair windows (`[B, 1, d]`).
    fn loss_of(&self, params: &[Tensor<1>], batch: &BcBatch) -> Tensor<1> {
        let d = self.cfg.dim;
        let b = batch.obs.dims()[0];
        let w = params[0].clone().reshape([d, d]);
        let diff =
            batch.obs.clone().reshape([b, d]).matmul(w) - batch.actions.clone().reshape([b, d]);
        // ‖K x − u‖² summed over coordinates, averaged over pairs: the reference's loss, whose
        // gradient sets the SGD noise (a mean over coordinates would divide the step by d).
        (diff.clone() * diff).sum_dim(1).mean()
    }
}

impl Task for LinearTask {
    type Batch = BcBatch;

    fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// K = 0, as the reference.
    fn init_params(&self, _seed: u64) -> HostParams {
        vec![vec![0.0; self.cfg.dim * self.cfg.dim]]
    }

    fn next_batch(&mut self, device: &Device) -> Result<BcBatch> {
        let idx = self.batches.next(self.batch_size);
        Ok(self.train.windows(idx.into_iter(), 1, device))
    }

    fn batch_tokens(&self, batch: &BcBatch) -> usize {
        batch.obs.dims()[0]
    }

    fn loss(&self, params: &[Tensor<1>], batch: &BcBatch, _train: bool) -> Tensor<1> {
        self.loss_of(params, batch)
    }

    fn val_loss(&self, params: &[Tensor<1>], device: &Device) -> Result<f64> {
        let b = self.val.windows(0..self.val.len(), 1, device);
        let loss: f32 = self.loss_of(params, &b).into_scalar();
        Ok(loss as f64)
    }

    fn evaluate(
        &mut self,
        _step: u64,
        raw: &[Tensor<1>],
        ema: Option<&[Tensor<1>]>,
        _device: &Device,
    ) -> Result<Vec<(String, f64)>> {
        let mut weights = vec![("raw", download(raw)?)];
        if let Some(e) = ema {
            weights.push(("ema", download(e)?));
        }
        let mut out = Vec::new();
        for (name, params) in &weights {
            let k = self.k_of(&params[0]);
            for &h in &self.horizons {
                out.push((format!("rollout_cost_h{h}_{name}"), self.system.cost(&k, h)));
            }
        }
        Ok(out)
    }

    fn evaluate_every(&self) -> u64 {
        self.every
    }

    fn cursor(&self) -> serde_json::Value {
        self.batches.cursor_json()
    }

    fn restore_cursor(&mut self, cursor: &serde_json::Value) -> Result<()> {
        self.batches.restore_json(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LinearConfig {
        LinearConfig {
            dim: 6,
            noise: 0.5,
            samples: 10,
            val_samples: 4,
            a_scale: 0.3,
            system_seed: 3,
        }
    }

    /// Q is orthogonal, so the expert's closed loop preserves norms: J_H(K*) = 1 for every H
    /// (‖x₀‖ = 1), the closed form the testbed's costs are measured against.
    #[test]
    fn the_expert_closed_loop_is_orthogonal() {
        let s = LinearSystem::new(&cfg()).unwrap();
        for h in [1, 10, 1000] {
            assert!((s.cost(&s.k_star, h) - 1.0).abs() < 1e-9, "H = {h}");
        }
        // A perturbed K is not marginal: its cost at H = 1000 differs from 1.
        let k: Vec<f64> = s.k_star.iter().map(|v| v * 1.05).collect();
        assert!((s.cost(&k, 1000) - 1.0).abs() > 1e-3);
    }

    /// Without noise the labels are exactly K* x.
    #[test]
    fn noiseless_labels_are_the_expert_actions() {
        let s = LinearSystem::new(&cfg()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = s.pairs(&mut rng, 3, 0.0);
        for r in 0..3 {
            let x: Vec<f64> = p.obs[r * 6..(r + 1) * 6]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let u = mat_vec(&s.k_star, &x);
            for (i, ui) in u.iter().enumerate() {
                assert!((ui - p.actions[r * 6 + i] as f64).abs() < 1e-5);
            }
        }
    }
}
