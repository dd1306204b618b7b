//! One optimizer step, shared by the training loop and the benchmark.
//!
//! `grad_accum` micro-batches (each loss divided by `grad_accum`, gradients summed), one
//! global-norm clip, one AdamW update at `lr_at(step)`, one EMA update. Randomness (dropout) is
//! reseeded from (seed, step, micro-batch) before every micro-batch, because burn cannot save its
//! RNG state: that is what makes a resumed run bit-identical to an uninterrupted one. Nothing here
//! reads from the device, so a step queues its work without a host sync.

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor};

use super::adamw::AdamW;
use super::clip::clip_global;
use super::ema;
use super::schedule::lr_at;
use super::task::Task;
use crate::config::{LoopConfig, OnNonfinite};
use crate::model::ParamSpec;

/// Parameters, EMA and optimizer state on the device, and the counters a checkpoint saves.
pub struct TrainState {
    pub step: u64,
    pub tokens: u64,
    pub params: Vec<Tensor<1>>,
    pub ema: Option<Vec<Tensor<1>>>,
    pub opt: AdamW,
    /// Rollbacks so far (`train.on_nonfinite = "rollback"`); the learning rate is scaled by
    /// `train.rollback_lr_factor` to this power.
    pub rollbacks: u32,
}

impl TrainState {
    /// Step 0: `params` as given, zero AdamW moments, and the EMA starting at `params` when
    /// `with_ema`.
    pub fn fresh(params: Vec<Tensor<1>>, with_ema: bool) -> Self {
        Self {
            step: 0,
            tokens: 0,
            ema: with_ema.then(|| params.clone()),
            opt: AdamW::zeros_like(&params),
            params,
            rollbacks: 0,
        }
    }
}

/// The mean loss and summed gradients of `accum` accumulated micro-batches; errors when none
/// ran.
pub fn finish_accumulation(
    grads: Option<Vec<Tensor<1>>>,
    loss_sum: Option<Tensor<1>>,
    accum: usize,
) -> Result<(Vec<Tensor<1>>, Tensor<1>)> {
    let grads = grads.context("optim.grad_accum must be ≥ 1")?;
    let loss = loss_sum.context("no micro-batch ran")? / accum as f64;
    Ok((grads, loss))
}

/// What a step leaves on the device for the logs to read when they need it.
pub struct StepOutput {
    /// Mean loss over the step's micro-batches (before the update).
    pub loss: Tensor<1>,
    /// Global gradient norm before clipping: computed when clipping is on or
    /// [`StepExtras::grad_norm`] asks for it.
    pub grad_norm: Option<Tensor<1>>,
    /// With `train.on_nonfinite = "skip"`: 1 if the step was applied, 0 if it was skipped
    /// because its loss (or, with clipping, its gradient norm) was not finite.
    pub applied: Option<Tensor<1>>,
    pub lr: f64,
    pub tokens: u64,
}

/// Mixes seed, step and micro-batch into one RNG seed (splitmix64 finalizer), so neighbouring
/// steps get unrelated dropout masks.
pub fn step_seed(seed: u64, step: u64, micro: u64) -> u64 {
    let mut z = seed
        .wrapping_add(step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(micro.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Copies of `params` that record the autodiff graph and will receive gradients.
pub fn tracked_copies(params: &[Tensor<1>]) -> Vec<Tensor<1>> {
    params
        .iter()
        .map(|p| p.clone().autodiff().require_grad())
        .collect()
}

/// The gradients of `tracked` (copies made by [`tracked_copies`]) in `grads`, in order; a
/// parameter the loss does not reach gets a zero gradient.
pub fn gradients(tracked: &[Tensor<1>], grads: &burn::tensor::Gradients) -> Vec<Tensor<1>> {
    tracked
        .iter()
        .map(|p| {
            p.grad(grads)
                .unwrap_or_else(|| p.clone().inner().zeros_like())
        })
        .collect()
}

/// The points inside a step where [`StepExtras::mark`] is called: after each
/// micro-batch's forward pass (its loss queued) and after its backward pass (its gradients
/// queued). The update follows the last backward pass and ends the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseEnd {
    Forward,
    Backward,
}

/// What a caller asks of a step beyond the update itself.
pub struct StepExtras<'a> {
    /// Compute the pre-clip gradient norm even when clipping is off (the trainer asks at log
    /// steps; the benchmark never, as its reference computes none).
    pub grad_norm: bool,
    /// Called at each [`PhaseEnd`]: the benchmark's profiler syncs the device there, so that a
    /// per-kernel log splits each step into its forward, backward and update launches instead
    /// of leaving the split to be guessed from kernel names. An error stops the step before
    /// the update.
    pub mark: Option<&'a mut dyn FnMut(PhaseEnd) -> Result<()>>,
}

/// Takes optimizer step `state.step + 1`, doing what `extras` asks.
pub fn optimizer_step<T: Task>(
    task: &mut T,
    state: &mut TrainState,
    specs: &[ParamSpec],
    cfg: &LoopConfig,
    device: &Device,
    extras: StepExtras,
) -> Result<StepOutput> {
    let mut extra_mark = extras.mark;
    let mut mark = |at: PhaseEnd| extra_mark.as_mut().map_or(Ok(()), |m| m(at));
    let t = state.step + 1;
    let lr = step_lr(state, cfg);
    let accum = cfg.optim.grad_accum;
    let mut grads: Option<Vec<Tensor<1>>> = None;
    let mut loss_sum: Option<Tensor<1>> = None;
    let mut tokens = 0u64;
    for micro in 0..accum {
        let batch = task.next_batch(device)?;
        tokens += task.batch_tokens(&batch) as u64;
        let seed = step_seed(cfg.train.seed, t, micro as u64);
        let (g, loss) = micro_batch_gradients(
            &*task,
            &state.params,
            &batch,
            accum,
            t,
            micro,
            seed,
            device,
            &mut mark,
        )?;
        accumulate(&mut grads, &mut loss_sum, g, loss);
    }
    let (grads, loss) = finish_accumulation(grads, loss_sum, accum)?;
    Ok(apply_gradients(
        state,
        grads,
        loss,
        tokens,
        specs,
        cfg,
        lr,
        extras.grad_norm,
    ))
}

/// The learning rate of the step after `state.step`: the schedule's, scaled by
/// `train.rollback_lr_factor` once per rollback.
pub fn step_lr(state: &TrainState, cfg: &LoopConfig) -> f64 {
    lr_at(state.step + 1, cfg.optim.lr, &cfg.schedule)
        * cfg.train.rollback_lr_factor.powi(state.rollbacks as i32)
}

/// Forward and backward pass of micro-batch `micro` (0-based) of optimizer step `t`: the
/// gradients of `loss / accum` with respect to `params` (one per parameter, in order; zero for
/// a parameter the loss does not reach) and the micro-batch's loss (one element, no autodiff).
/// The device's RNG is seeded with `seed` first (dropout). `mark` is called after the forward
/// and after the backward pass ([`PhaseEnd`]); its error stops the step.
#[allow(clippy::too_many_arguments)]
pub fn micro_batch_gradients<T: Task>(
    task: &T,
    params: &[Tensor<1>],
    batch: &T::Batch,
    accum: usize,
    t: u64,
    micro: usize,
    seed: u64,
    device: &Device,
    mark: &mut dyn FnMut(PhaseEnd) -> Result<()>,
) -> Result<(Vec<Tensor<1>>, Tensor<1>)> {
    device.seed(seed);
    let tracked = tracked_copies(params);
    let mut loss = task.loss(&tracked, batch, true);
    if crate::fault::nan_loss_now(t) && micro == 0 {
        loss = loss * f64::NAN;
    }
    mark(PhaseEnd::Forward)?;
    let backward = (loss.clone() / accum as f64).backward();
    let micro_grads = gradients(&tracked, &backward);
    mark(PhaseEnd::Backward)?;
    Ok((micro_grads, loss.inner()))
}

/// Adds one micro-batch's gradients and loss to the step's sums (`None` before the first).
pub fn accumulate(
    grads: &mut Option<Vec<Tensor<1>>>,
    loss_sum: &mut Option<Tensor<1>>,
    micro_grads: Vec<Tensor<1>>,
    loss: Tensor<1>,
) {
    *grads = Some(match grads.take() {
        None => micro_grads,
        Some(acc) => acc
            .into_iter()
            .zip(micro_grads)
            .map(|(a, g)| a + g)
            .collect(),
    });
    *loss_sum = Some(match loss_sum.take() {
        None => loss,
        Some(s) => s + loss,
    });
}

/// The update of optimizer step `state.step + 1` from the step's accumulated gradients and its
/// mean loss: global-norm clip (the norm computed when clipping or `want_norm`), the
/// `train.on_nonfinite = "skip"` mask, AdamW at `lr`, the EMA; then `state.step` and
/// `state.tokens` (+ `tokens`) advance. Deterministic given its inputs, so workers that hold
/// the same state and the same (all-reduced) gradients and loss stay identical.
#[allow(clippy::too_many_arguments)]
pub fn apply_gradients(
    state: &mut TrainState,
    mut grads: Vec<Tensor<1>>,
    loss: Tensor<1>,
    tokens: u64,
    specs: &[ParamSpec],
    cfg: &LoopConfig,
    lr: f64,
    want_norm: bool,
) -> StepOutput {
    let t = state.step + 1;
    let grad_norm = clip_global(&mut grads, cfg.optim.grad_clip, want_norm);
    // "skip": the finiteness of the loss (and of the clip norm) decides on the device whether
    // the update lands; nothing is read back, so the GPU gets no extra sync.
    let skip_mask = (cfg.train.on_nonfinite == OnNonfinite::Skip).then(|| {
        let mut bad = loss.clone().is_finite().bool_not();
        if cfg.optim.grad_clip > 0.0 {
            if let Some(n) = &grad_norm {
                bad = bad.bool_or(n.clone().is_finite().bool_not());
            }
        }
        bad
    });
    let before = skip_mask.as_ref().map(|_| {
        (
            state.params.clone(),
            state.opt.m.clone(),
            state.opt.v.clone(),
            state.ema.clone(),
        )
    });
    state
        .opt
        .step(&mut state.params, &grads, specs, t, lr, &cfg.optim);
    if let Some(ema_params) = state.ema.as_mut() {
        if let Some(beta) = ema::beta_at(t, &cfg.ema) {
            ema::update(ema_params, &state.params, beta);
        }
    }
    let mut applied = None;
    if let (Some(bad), Some((p0, m0, v0, e0))) = (skip_mask, before) {
        let keep = |new: &mut Vec<Tensor<1>>, old: Vec<Tensor<1>>| {
            for (n, o) in new.iter_mut().zip(old) {
                let mask = bad.clone().expand(o.shape());
                *n = n.clone().mask_where(mask, o);
            }
        };
        keep(&mut state.params, p0);
        keep(&mut state.opt.m, m0);
        keep(&mut state.opt.v, v0);
        if let (Some(e), Some(e0)) = (state.ema.as_mut(), e0) {
            keep(e, e0);
        }
        applied = Some(bad.bool_not().float());
    }
    state.step = t;
    state.tokens += tokens;
    StepOutput {
        loss,
        grad_norm,
        applied,
        lr,
        tokens,
    }
}
