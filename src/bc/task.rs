//! The behaviour-cloning [`Task`]: ℓ_BC on minibatches of (normalised observation, expert
//! action) pairs, the same loss on the validation episodes, and rollouts of the raw and EMA
//! policies as the long-horizon evaluation.
//!
//! Minibatches come from [`Minibatches`]: a cursor `{epoch, position}` is all a checkpoint needs
//! for an exact resume.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::minibatch::Minibatches;
use super::normalize::ObsNorm;
use super::policy::MlpPolicy;
use super::rollout::{self, RolloutSpec};
use crate::model::params::download;
use crate::model::{HostParams, ParamSpec};
use crate::train::Task;

/// Normalised observations and expert actions, row-major.
#[derive(Clone, Debug)]
pub struct Pairs {
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub obs_dim: usize,
    pub action_dim: usize,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.obs.len() / self.obs_dim
    }

    pub fn is_empty(&self) -> bool {
        self.obs.is_empty()
    }

    /// Rows `idx` as a `[B, obs_dim]` and a `[B, A]` tensor.
    pub fn batch(&self, idx: impl Iterator<Item = usize>, device: &Device) -> BcBatch {
        let (mut o, mut a) = (Vec::new(), Vec::new());
        let mut b = 0;
        for i in idx {
            o.extend_from_slice(&self.obs[i * self.obs_dim..(i + 1) * self.obs_dim]);
            a.extend_from_slice(&self.actions[i * self.action_dim..(i + 1) * self.action_dim]);
            b += 1;
        }
        BcBatch {
            obs: Tensor::from_data(TensorData::new(o, [b, self.obs_dim]), device),
            actions: Tensor::from_data(TensorData::new(a, [b, self.action_dim]), device),
        }
    }
}

/// Observations `[B, obs_dim]` and expert actions `[B, A]`.
pub struct BcBatch {
    pub obs: Tensor<2>,
    pub actions: Tensor<2>,
}

/// The rollout evaluation and where it logs.
pub struct RolloutEval {
    pub spec: RolloutSpec,
    pub every: u64,
    pub log: PathBuf,
}

pub struct BcTask {
    pub policy: MlpPolicy,
    pub norm: ObsNorm,
    train: Pairs,
    val: Pairs,
    batch_size: usize,
    batches: Minibatches,
    rollouts: Option<RolloutEval>,
    /// Recorded in checkpoints ([`BcInfo`]).
    info: serde_json::Value,
}

/// What a BC checkpoint records about its task, so that `lmtrain rollout` needs no dataset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BcInfo {
    /// The Gymnasium id of the environment the expert acted in.
    pub env: String,
    pub obs_dim: usize,
    pub action_dim: usize,
    /// The expert file the rollouts' action error was measured against.
    pub expert: Option<String>,
}

impl BcTask {
    pub fn new(
        policy: MlpPolicy,
        norm: ObsNorm,
        train: Pairs,
        val: Pairs,
        batch_size: usize,
        seed: u64,
    ) -> Self {
        Self {
            policy,
            norm,
            batches: Minibatches::new(train.len(), seed),
            train,
            val,
            batch_size,
            rollouts: None,
            info: serde_json::Value::Null,
        }
    }

    pub fn with_info(mut self, info: &BcInfo) -> Self {
        self.info = serde_json::to_value(info).unwrap_or(serde_json::Value::Null);
        self
    }

    pub fn with_rollouts(mut self, r: RolloutEval) -> Self {
        self.rollouts = Some(r);
        self
    }
}

impl Task for BcTask {
    type Batch = BcBatch;

    fn specs(&self) -> &[ParamSpec] {
        self.policy.specs()
    }

    fn init_params(&self, seed: u64) -> HostParams {
        self.policy.init(seed)
    }

    fn next_batch(&mut self, device: &Device) -> Result<BcBatch> {
        let idx = self.batches.next(self.batch_size);
        Ok(self.train.batch(idx.into_iter(), device))
    }

    fn batch_tokens(&self, batch: &BcBatch) -> usize {
        batch.obs.dims()[0]
    }

    fn loss(&self, params: &[Tensor<1>], batch: &BcBatch, _train: bool) -> Tensor<1> {
        let device = batch.obs.device();
        self.policy
            .loss(params, batch.obs.clone(), batch.actions.clone(), &device)
    }

    fn val_loss(&self, params: &[Tensor<1>], device: &Device) -> Result<f64> {
        // Chunks bound memory; the mean is over every pair and action dimension.
        let n = self.val.len();
        let chunk = 8192;
        let mut total = 0.0f64;
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let b = self.val.batch(start..end, device);
            let loss: f32 = self
                .policy
                .loss(params, b.obs, b.actions, device)
                .into_scalar();
            total += loss as f64 * (end - start) as f64;
            start = end;
        }
        Ok(total / n.max(1) as f64)
    }

    fn evaluate(
        &mut self,
        step: u64,
        raw: &[Tensor<1>],
        ema: Option<&[Tensor<1>]>,
        _device: &Device,
    ) -> Result<Vec<(String, f64)>> {
        let Some(r) = &self.rollouts else {
            return Ok(Vec::new());
        };
        let mut weights = vec![("raw", download(raw)?)];
        if let Some(e) = ema {
            weights.push(("ema", download(e)?));
        }
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        for (name, params) in &weights {
            let rs = rollout::rollouts(&r.spec, &self.policy, params)?;
            rollout::append_log(&r.log, step, name, &rs)?;
            out.extend(rollout::metrics(
                &rs,
                name,
                self.train.action_dim,
                r.spec.expert.is_some(),
            ));
        }
        // Wall time of the whole evaluation (every weights' episodes), for BENCHMARKS.md.
        out.push((
            "rollout_seconds".to_string(),
            started.elapsed().as_secs_f64(),
        ));
        Ok(out)
    }

    fn evaluate_every(&self) -> u64 {
        self.rollouts.as_ref().map_or(0, |r| r.every)
    }

    fn step_logs(&self) -> &'static [&'static str] {
        &["rollouts.jsonl"]
    }

    fn info(&self) -> serde_json::Value {
        self.info.clone()
    }

    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        self.norm.buffers()
    }

    fn cursor(&self) -> serde_json::Value {
        self.batches.cursor_json()
    }

    fn restore_cursor(&mut self, cursor: &serde_json::Value) -> Result<()> {
        self.batches.restore_json(cursor)
    }
}
