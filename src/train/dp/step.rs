//! The data-parallel optimizer step.
//!
//! One producer draws the step's `optim.grad_accum` global micro-batches from the task and
//! splits each one's rows evenly over the W workers ([`draw_shards`]). Worker r then, on its
//! own device and thread ([`worker_step`]):
//! 1. runs forward and backward on its shard of every micro-batch with the single-device
//!    step's functions ([`micro_batch_gradients`], [`accumulate`]): gradients of
//!    Σ_micro loss_shard / grad_accum, and the mean shard loss;
//! 2. flattens the gradients and, as the last element, its loss into one f32 buffer `[P + 1]`
//!    (P = the parameter count), all-reduces it (mean over workers, one collective per step)
//!    and cuts it back into per-parameter gradients and the global loss;
//! 3. applies the update ([`apply_gradients`]): the global gradient norm of the averaged
//!    gradients, clipping, the `on_nonfinite = "skip"` mask (on the averaged loss, so every
//!    worker decides alike), AdamW and the EMA. Every worker holds the same state and the same
//!    averaged buffer, so the replicas stay bitwise identical.
//!
//! The mean over workers of the shard losses is the global batch's loss, and the mean of
//! their gradients its gradient, only when the loss is a per-row mean and the shards are
//! equal-sized (see [`super`]); [`draw_shards`] refuses a batch that does not split evenly.
//!
//! Dropout: worker r's RNG seed for micro-batch m of step t is `step_seed(train.seed, t, r·2³²
//! + m)`, so rank 0 draws what a single-device run draws and the other ranks draw other masks.

use anyhow::{anyhow, Result};
use burn::tensor::{Device, Tensor};
use cubecl_environment::stream::StreamId;

use super::allreduce::AllReduce;
use super::shard::RowSplit;
use crate::config::LoopConfig;
use crate::model::ParamSpec;
use crate::train::step::{
    accumulate, apply_gradients, finish_accumulation, micro_batch_gradients, step_lr, step_seed,
    PhaseEnd, StepExtras, StepOutput, TrainState,
};
use crate::train::task::Task;
use crate::train::watchdog::{Phase, StepProgress};

/// One data-parallel worker: its device, its replica of the training state, its handle on the
/// group's collective, and the device stream its work is submitted on.
pub struct Worker<R: AllReduce> {
    pub device: Device,
    pub state: TrainState,
    pub comm: R,
    /// cubecl submits work on a stream chosen per thread unless told otherwise. The step's
    /// worker threads are new each step, so each worker's work is pinned to one stream for
    /// its whole life ([`StreamId::executes`]), as a long-lived thread per device would have
    /// it: its replica's buffers are then always read and written on the stream (and memory
    /// pool) that made them. Worker 0 uses the trainer thread's own stream, on which it also
    /// validates and evaluates.
    pub stream: StreamId,
}

impl<R: AllReduce> Worker<R> {
    /// A worker with a stream of its own ([`StreamId::allocate`]).
    pub fn new(device: Device, state: TrainState, comm: R) -> Self {
        Self {
            device,
            state,
            comm,
            stream: StreamId::allocate(),
        }
    }
}

/// The producer's part of a step: `optim.grad_accum` micro-batches drawn from `task` on
/// `device`, each split into `world` shards of equal rows. Returns `shards[r][m]` (worker r's
/// rows of micro-batch m, still on `device`) and the step's global token (or sample) count.
///
/// # Errors
/// The task's, or a micro-batch whose rows do not divide by `world` (naming
/// `train.batch_size` and the `device` list). The stream has then advanced past that batch.
pub fn draw_shards<T: Task>(
    task: &mut T,
    cfg: &LoopConfig,
    world: usize,
    device: &Device,
) -> Result<(Vec<Vec<T::Batch>>, u64)>
where
    T::Batch: RowSplit,
{
    let mut shards: Vec<Vec<T::Batch>> = (0..world).map(|_| Vec::new()).collect();
    let mut tokens = 0u64;
    for _ in 0..cfg.optim.grad_accum {
        let batch = task.next_batch(device)?;
        tokens += task.batch_tokens(&batch) as u64;
        for (r, s) in batch.split_rows(world)?.into_iter().enumerate() {
            shards[r].push(s);
        }
    }
    Ok((shards, tokens))
}

/// The gradients and the loss as one flat buffer `[P + 1]`: the parameters' gradients in
/// order, then the loss (one element).
pub(crate) fn flatten(grads: Vec<Tensor<1>>, loss: Tensor<1>) -> Tensor<1> {
    let mut parts = grads;
    parts.push(loss);
    Tensor::cat(parts, 0)
}

/// The inverse of [`flatten`] for gradients of lengths `lens`.
pub(crate) fn unflatten(flat: Tensor<1>, lens: &[usize]) -> (Vec<Tensor<1>>, Tensor<1>) {
    let mut at = 0;
    let grads = lens
        .iter()
        .map(|&n| {
            let g = flat.clone().narrow(0, at, n);
            at += n;
            g
        })
        .collect();
    (grads, flat.narrow(0, at, 1))
}

/// Worker `w.comm.rank()`'s part of optimizer step `w.state.step + 1`, given its shards of the
/// step's micro-batches (`shards.len()` must be `optim.grad_accum`; moved to `w.device` here)
/// and the step's global `tokens`. Every worker of the group must call it for the same step.
///
/// The returned [`StepOutput`] holds the global (all-reduced) loss, the norm of the averaged
/// gradients, and the global tokens: the same values on every worker.
///
/// `progress`, when given, records the worker's [`Phase`] for the step watchdog.
///
/// # Errors
/// The task's, a wrong shard count, or the collective's (another worker failed). On an error
/// the caller must [`AllReduce::abort`] the group, or the other workers wait for ever.
#[allow(clippy::too_many_arguments)]
pub fn worker_step<T: Task, R: AllReduce>(
    task: &T,
    w: &mut Worker<R>,
    shards: Vec<T::Batch>,
    tokens: u64,
    specs: &[ParamSpec],
    cfg: &LoopConfig,
    extras: StepExtras,
    progress: Option<&StepProgress>,
) -> Result<StepOutput>
where
    T::Batch: RowSplit,
{
    let accum = cfg.optim.grad_accum;
    if shards.len() != accum {
        anyhow::bail!(
            "worker {} got {} micro-batch shards for optim.grad_accum = {accum}",
            w.comm.rank(),
            shards.len()
        );
    }
    let mut extra_mark = extras.mark;
    let mut mark = |at: PhaseEnd| extra_mark.as_mut().map_or(Ok(()), |m| m(at));
    let t = w.state.step + 1;
    let lr = step_lr(&w.state, cfg);
    let rank = w.comm.rank() as u64;
    let phase = |p: Phase| {
        if let Some(progress) = progress {
            progress.set(rank as usize, p);
        }
    };
    phase(Phase::Gradients);
    crate::fault::stall_worker(rank as usize, t);
    let mut grads: Option<Vec<Tensor<1>>> = None;
    let mut loss_sum: Option<Tensor<1>> = None;
    for (micro, shard) in shards.into_iter().enumerate() {
        let batch = shard.to_device(&w.device);
        let seed = step_seed(cfg.train.seed, t, (rank << 32) | micro as u64);
        let (g, loss) = micro_batch_gradients(
            task,
            &w.state.params,
            &batch,
            accum,
            t,
            micro,
            seed,
            &w.device,
            &mut mark,
        )?;
        accumulate(&mut grads, &mut loss_sum, g, loss);
    }
    let (grads, loss) = finish_accumulation(grads, loss_sum, accum)?;
    let lens: Vec<usize> = grads.iter().map(|g| g.dims()[0]).collect();
    phase(Phase::AllReduce);
    let reduced = w.comm.all_reduce_mean(flatten(grads, loss))?;
    phase(Phase::Update);
    let (grads, loss) = unflatten(reduced, &lens);
    let out = apply_gradients(
        &mut w.state,
        grads,
        loss,
        tokens,
        specs,
        cfg,
        lr,
        extras.grad_norm,
    );
    phase(Phase::Done);
    Ok(out)
}

/// One data-parallel optimizer step of all `workers` (rank order, `workers[r].comm.rank() ==
/// r`): [`draw_shards`] on worker 0's device, then [`worker_step`] on one scoped thread per
/// worker. Returns each worker's [`StepOutput`] in rank order. `grad_norm`: compute the
/// gradient norm even when clipping is off (as [`StepExtras::grad_norm`]); `progress`: where
/// the workers record their [`Phase`] for the step watchdog (reset here).
///
/// Threads are spawned per step (the workers borrow the task, which the producer borrows
/// mutably between steps); each worker's device work stays on its own stream
/// ([`Worker::stream`]) from step to step all the same, which is what a long-lived thread per
/// device would give.
///
/// # Errors
/// The first worker's error in rank order (the group is aborted so that none hangs), or the
/// producer's. `T: Sync` because the workers share the task's loss.
pub fn data_parallel_step<T, R>(
    task: &mut T,
    workers: &mut [Worker<R>],
    specs: &[ParamSpec],
    cfg: &LoopConfig,
    grad_norm: bool,
    progress: Option<&StepProgress>,
) -> Result<Vec<StepOutput>>
where
    T: Task + Sync,
    T::Batch: RowSplit + Send,
    R: AllReduce,
{
    let first = workers
        .first()
        .ok_or_else(|| anyhow!("data-parallel training needs at least one worker"))?;
    let device = first.device.clone();
    if let Some(p) = progress {
        p.reset();
    }
    let (shards, tokens) = draw_shards(task, cfg, workers.len(), &device)?;
    let task = &*task;
    let results: Vec<Result<StepOutput>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(shards)
            .map(|(w, shard)| {
                s.spawn(move || {
                    let extras = StepExtras {
                        grad_norm,
                        mark: None,
                    };
                    // A failed or panicking worker breaks the group's barrier, so that the
                    // others return instead of waiting for it for ever.
                    let stream = w.stream;
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        stream.executes(|| {
                            worker_step(task, &mut *w, shard, tokens, specs, cfg, extras, progress)
                        })
                    }))
                    .unwrap_or_else(|_| Err(anyhow!("a data-parallel worker panicked")));
                    if out.is_err() {
                        w.comm.abort();
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a data-parallel worker panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bc::linear::LinearTask;
    use crate::model::params::{download, upload};

    use crate::train::dp::InProcessAllReduce;
    use crate::train::step::optimizer_step;

    const STEPS: usize = 4;

    fn cfg() -> LoopConfig {
        super::super::probe::probe_config(8, STEPS as u64).unwrap()
    }

    fn task(cfg: &LoopConfig) -> LinearTask {
        super::super::probe::probe_task(cfg).unwrap()
    }

    /// `world` workers from the task's initial parameters, on the one CPU device.
    fn workers(
        task: &LinearTask,
        cfg: &LoopConfig,
        world: usize,
    ) -> Vec<Worker<InProcessAllReduce>> {
        let d = Device::flex();
        InProcessAllReduce::group(world)
            .into_iter()
            .map(|comm| {
                let params = upload(task.specs(), &task.init_params(cfg.train.seed), &d).unwrap();
                Worker::new(d.clone(), TrainState::fresh(params, true), comm)
            })
            .collect()
    }

    fn scalar(t: Tensor<1>) -> f64 {
        let v: f32 = t.into_scalar();
        v as f64
    }

    /// Issue 19's equivalence: 2 workers with half the rows each (grad_accum 2, clipping on,
    /// AdamW, EMA) take the steps 1 worker takes with every row. Losses and gradient norms per
    /// step agree within 1e-5 relative, the two replicas are bitwise identical (weights,
    /// moments, EMA), and their weights are within float rounding of the single worker's; the
    /// single worker is bitwise the trainer's own [`optimizer_step`].
    #[test]
    fn two_workers_with_half_the_rows_reproduce_one_with_all() {
        let cfg = cfg();
        let mut one_task = task(&cfg);
        let mut two_task = task(&cfg);
        let specs = one_task.specs().to_vec();
        let mut one = workers(&one_task, &cfg, 1);
        let mut two = workers(&two_task, &cfg, 2);
        // The single-device trainer's own step, which one worker must reproduce bit for bit.
        let mut plain_task = task(&cfg);
        let mut plain = workers(&plain_task, &cfg, 1).remove(0);
        for step in 1..=STEPS {
            let extras = StepExtras {
                grad_norm: true,
                mark: None,
            };
            let p = optimizer_step(
                &mut plain_task,
                &mut plain.state,
                &specs,
                &cfg,
                &plain.device,
                extras,
            )
            .unwrap();
            let a = data_parallel_step(&mut one_task, &mut one, &specs, &cfg, true, None).unwrap();
            assert_eq!(scalar(p.loss), scalar(a[0].loss.clone()), "step {step}");
            let b = data_parallel_step(&mut two_task, &mut two, &specs, &cfg, true, None).unwrap();
            let la = scalar(a[0].loss.clone());
            let (lb0, lb1) = (scalar(b[0].loss.clone()), scalar(b[1].loss.clone()));
            assert_eq!(lb0, lb1, "step {step}: the workers' losses differ");
            assert!(
                (la - lb0).abs() <= 1e-5 * la.abs(),
                "step {step}: loss {la} (1 worker) vs {lb0} (2 workers)"
            );
            let (na, nb) = (
                scalar(a[0].grad_norm.clone().unwrap()),
                scalar(b[0].grad_norm.clone().unwrap()),
            );
            assert!(
                (na - nb).abs() <= 1e-5 * na,
                "step {step}: norm {na} vs {nb}"
            );
            assert_eq!(a[0].tokens, 16);
            assert_eq!(b[0].tokens, 16);
        }
        let host = |s: &TrainState| {
            [
                download(&s.params).unwrap(),
                download(&s.opt.m).unwrap(),
                download(&s.opt.v).unwrap(),
                download(s.ema.as_ref().unwrap()).unwrap(),
            ]
        };
        let (r0, r1, single) = (
            host(&two[0].state),
            host(&two[1].state),
            host(&one[0].state),
        );
        assert_eq!(r0, r1, "the replicas are not bitwise identical");
        assert_eq!(
            single,
            host(&plain.state),
            "1 worker differs from optimizer_step"
        );
        assert_eq!(two[0].state.step, STEPS as u64);
        assert_eq!(two[1].state.tokens, 16 * STEPS as u64);
        for (x, y) in r0[0][0].iter().zip(&single[0][0]) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
        // The step moved the weights away from zero, so the comparison is not vacuous.
        assert!(single[0][0].iter().any(|v| v.abs() > 1e-3));
    }

    /// A batch that does not split evenly is refused with the keys to change, and no worker
    /// is left waiting.
    #[test]
    fn an_uneven_batch_is_an_error_naming_the_keys() {
        let mut cfg = cfg();
        cfg.train.batch_size = 7;
        let mut t = task(&cfg);
        let specs = t.specs().to_vec();
        let mut two = workers(&t, &cfg, 2);
        let e = data_parallel_step(&mut t, &mut two, &specs, &cfg, false, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("train.batch_size") && e.contains("device"),
            "{e}"
        );
    }

    /// A compile-time check: the tasks can be shared by worker threads and their batches
    /// split and sent to them, as [`data_parallel_step`] needs.
    #[test]
    fn every_task_can_be_shared_by_workers() {
        fn shared<T: Task + Sync>()
        where
            T::Batch: RowSplit + Send,
        {
        }
        shared::<crate::lm::task::LmTask>();
        shared::<crate::bc::task::BcTask>();
        shared::<LinearTask>();
    }
}
