//! What the trainer needs from a task (language modelling now, behaviour cloning later).

use anyhow::Result;
use burn::tensor::{Device, Tensor};

use crate::model::{HostParams, ParamSpec};

/// A trainable task: its parameters, its training stream, its loss and its evaluations.
///
/// Parameters are flat 1-D tensors in [`Task::specs`] order. The trainer owns their values (raw
/// and EMA) and the optimizer; the task owns its data and knows how to turn parameters and a batch
/// into a loss.
pub trait Task {
    /// One micro-batch, already on the device.
    type Batch;

    /// Names, shapes and weight-decay flags of the parameters, in order.
    fn specs(&self) -> &[ParamSpec];

    /// Fresh initial values, deterministic from `seed`.
    fn init_params(&self, seed: u64) -> HostParams;

    /// The next micro-batch of the training stream, placed on `device`.
    fn next_batch(&mut self, device: &Device) -> Result<Self::Batch>;

    /// How many tokens (or samples) a batch counts for throughput and `tokens` in the logs.
    fn batch_tokens(&self, batch: &Self::Batch) -> usize;

    /// The training loss of a batch. `params` carry autodiff; `train` enables dropout.
    fn loss(&self, params: &[Tensor<1>], batch: &Self::Batch, train: bool) -> Tensor<1>;

    /// The validation loss on the task's fixed validation set, with no autodiff and no dropout.
    fn val_loss(&self, params: &[Tensor<1>], device: &Device) -> Result<f64>;

    /// The long-horizon evaluation of the raw and (if kept) EMA weights at `step`: for the LM,
    /// long generations and their quality metrics. Returns named metrics for metrics.jsonl;
    /// tasks without one return none.
    fn evaluate(
        &mut self,
        _step: u64,
        _raw: &[Tensor<1>],
        _ema: Option<&[Tensor<1>]>,
        _device: &Device,
    ) -> Result<Vec<(String, f64)>> {
        Ok(Vec::new())
    }

    /// Steps between the long-horizon evaluations ([`Task::evaluate`]); 0: none. The LM's is
    /// `eval.generate_every`, BC's `eval.rollout_every`.
    fn evaluate_every(&self) -> u64 {
        0
    }

    /// JSONL logs in the run directory, besides `metrics.jsonl`, whose lines carry a `step`
    /// and are rewound on resume (the LM's `generations.jsonl`, BC's `rollouts.jsonl`).
    fn step_logs(&self) -> &'static [&'static str] {
        &[]
    }

    /// Tensors the task keeps in checkpoints but does not train (BC's observation
    /// normalisation): names and flat values.
    fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        Vec::new()
    }

    /// What a checkpoint records for using the weights outside training (BC: the environment).
    fn info(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Where the training stream stands, to be saved in a checkpoint.
    fn cursor(&self) -> serde_json::Value;

    /// Moves the training stream to a saved cursor (on resume).
    fn restore_cursor(&mut self, cursor: &serde_json::Value) -> Result<()>;

    /// Lines for train.log that the task gathered since the last call (data statistics,
    /// warnings); the trainer writes them after each step.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}
