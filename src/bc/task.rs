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
use super::policy::BcPolicy;
use super::rollout::{self, RolloutSpec};
use crate::model::params::download;
use crate::model::{HostParams, ParamSpec};
use crate::train::Task;

/// Normalised observations and expert actions, row-major, episodes one after another in time
/// order.
#[derive(Clone, Debug)]
pub struct Pairs {
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    /// Each pair's time step within its episode (0 at the episode's first pair), so that a
    /// window never reaches back into the previous episode.
    pub t: Vec<u32>,
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

    /// The windows of `history` pairs ending at pairs `idx`: observations `[B, history,
    /// obs_dim]`, actions `[B, history, A]`. Positions before the episode's first pair are zero
    /// (in normalised units, the mean observation) and masked out of the loss.
    pub fn windows(
        &self,
        idx: impl Iterator<Item = usize>,
        history: usize,
        device: &Device,
    ) -> BcBatch {
        let (d, a) = (self.obs_dim, self.action_dim);
        let (mut o, mut act, mut mask) = (Vec::new(), Vec::new(), Vec::new());
        let (mut b, mut valid) = (0, 0);
        for i in idx {
            for back in (0..history).rev() {
                if back <= self.t[i] as usize {
                    let j = i - back;
                    o.extend_from_slice(&self.obs[j * d..(j + 1) * d]);
                    act.extend_from_slice(&self.actions[j * a..(j + 1) * a]);
                    mask.push(1.0f32);
                    valid += 1;
                } else {
                    o.extend(std::iter::repeat_n(0.0, d));
                    act.extend(std::iter::repeat_n(0.0, a));
                    mask.push(0.0);
                }
            }
            b += 1;
        }
        let padded = valid < b * history;
        BcBatch {
            obs: Tensor::from_data(TensorData::new(o, [b, history, d]), device),
            actions: Tensor::from_data(TensorData::new(act, [b, history, a]), device),
            mask: padded.then(|| Tensor::from_data(TensorData::new(mask, [b, history, 1]), device)),
            valid,
        }
    }
}

/// Windows of observations `[B, T, obs_dim]` and expert actions `[B, T, A]` (T = 1 for the MLP).
pub struct BcBatch {
    pub obs: Tensor<3>,
    pub actions: Tensor<3>,
    /// `[B, T, 1]`: 1 at positions holding a real pair, 0 at padding; `None` when none is padded.
    pub mask: Option<Tensor<3>>,
    /// Positions holding a real pair.
    pub valid: usize,
}

/// The rollout evaluation and where it logs.
pub struct RolloutEval {
    pub spec: RolloutSpec,
    pub every: u64,
    pub log: PathBuf,
}

pub struct BcTask {
    pub policy: BcPolicy,
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
        policy: BcPolicy,
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
        Ok(self.policy.batch(&self.train, idx.into_iter(), device))
    }

    fn batch_tokens(&self, batch: &BcBatch) -> usize {
        batch.obs.dims()[0]
    }

    fn loss(&self, params: &[Tensor<1>], batch: &BcBatch, _train: bool) -> Tensor<1> {
        self.policy.loss(params, batch)
    }

    fn val_loss(&self, params: &[Tensor<1>], device: &Device) -> Result<f64> {
        self.policy.mean_loss(params, &self.val, device)
    }

    fn evaluate(
        &mut self,
        step: u64,
        raw: &[Tensor<1>],
        ema: Option<&[Tensor<1>]>,
        device: &Device,
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
            let rs = rollout::rollouts(&r.spec, &self.policy, params, device)?;
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
