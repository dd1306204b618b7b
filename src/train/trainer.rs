//! The step loop: steps (see [`super::step`]), logs, validation, checkpoints, resume and
//! interruption. The loss and gradient norm stay on the device until a log step reads them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Tensor};

use super::adamw::AdamW;
use super::checkpoint::{self, BemaState, CheckpointMeta, CheckpointState};
use super::dp::{data_parallel_step, AllReduce, DataParallel, RowSplit, Worker};
use super::ema::{self, Bema};
use super::metrics::{MetricsRow, RunLog};
use super::step::{optimizer_step, StepExtras, StepOutput, TrainState};
use super::task::Task;
use super::watchdog::{seconds, StepProgress, Watchdog, EXIT_STEP_TIMEOUT};
use crate::config::{LoopConfig, OnNonfinite};
use crate::model::params::{download, upload};
use crate::model::{HostParams, ParamSpec};

/// What the trainer needs besides the task.
pub struct TrainOptions {
    pub run_dir: PathBuf,
    pub config: LoopConfig,
    pub device: Device,
    /// A checkpoint to continue from.
    pub resume_from: Option<PathBuf>,
    /// Stored in checkpoints so that sampling and resume can check the tokenizer.
    pub tokenizer_hash: String,
    /// The train shards (absolute paths), stored in checkpoints so that a resume can tell when
    /// they changed.
    pub train_shards: Vec<String>,
    /// Set by SIGINT/SIGTERM: finish the step, checkpoint, return.
    pub stop: Arc<AtomicBool>,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub final_step: u64,
    pub interrupted: bool,
    pub last_checkpoint: Option<PathBuf>,
    pub last_row: Option<MetricsRow>,
    /// Wall time of this invocation's first step up to its loss read-back, when that step was
    /// logged (always on a fresh run).
    pub first_step_seconds: Option<f64>,
}

fn read_scalar(t: Tensor<1>, what: &str) -> Result<f64> {
    let v: f32 = t
        .try_into_scalar()
        .map_err(|e| anyhow::anyhow!("cannot read {what} from the device: {e:?}"))?;
    Ok(v as f64)
}

/// Trains on `opts.device`.
pub fn train<T: Task>(task: &mut T, opts: TrainOptions) -> Result<RunOutcome> {
    train_with(task, opts, &mut SingleDevice)
}

/// Trains data-parallel over `group`'s workers (worker 0 on `opts.device`), or as [`train`]
/// when `group` is `None`.
///
/// One producer (this thread) draws each micro-batch and splits its rows over the workers;
/// every step runs one scoped thread per worker ([`data_parallel_step`]: gradients of its
/// shard, one all-reduce of the flattened gradients and loss, the global-norm clip, AdamW and
/// the EMA on every replica). Every replica starts as a copy of worker 0's state (fresh: from
/// `train.seed`; resumed or rolled back: from the checkpoint). Between steps worker 0's replica
/// is the run's state: it alone validates, evaluates, logs and checkpoints, while the other
/// workers have no thread running (what a barrier would make long-lived threads do). The
/// checkpoint stores the producer's global data cursor, so a run saved with W workers resumes
/// with any other W. `tokens`, `tok_per_s` and the loss are global.
///
/// Scoped threads per step rather than long-lived ones: the producer needs the task mutably
/// (drawing batches) and the workers share it (their losses), which scoped threads allow
/// without locks. Their cost, measured on a shared 2-core CPU (load ~4): spawning 2 scoped
/// threads 0.5–1 ms per step, and 0.65–2.5 ms per step in all for the CPU stand-in on the
/// linear testbed (2,000 steps: 0.12 s with one worker, 1.4–5.2 s with two); the tiny LM's
/// 12-step run took the same wall time (~1 s) either way. Against a GPU step of ≥ 100 ms on a
/// many-core node, where a spawn takes tens of µs, that is negligible.
pub fn train_parallel<T>(
    task: &mut T,
    opts: TrainOptions,
    group: Option<DataParallel>,
) -> Result<RunOutcome>
where
    T: Task + Sync,
    T::Batch: RowSplit + Send,
{
    let Some(group) = group else {
        return train(task, opts);
    };
    let mut comms = group.comms.into_iter();
    let comm0 = comms
        .next()
        .context("data-parallel training needs at least one worker")?;
    let mut stepper = DataParallelStepper {
        progress: Arc::new(StepProgress::new(group.names)),
        comm0: Some(comm0),
        others: group
            .devices
            .into_iter()
            .skip(1)
            .zip(comms)
            .map(|(device, comm)| Worker::new(device, empty_state(), comm))
            .collect(),
        description: group.description,
    };
    train_with(task, opts, &mut stepper)
}

/// What the step watchdog does when a step overruns: says so on stderr and in train.log,
/// then ends the process with [`EXIT_STEP_TIMEOUT`] (a thread blocked in a collective cannot
/// be stopped; the checkpoints were written atomically before the step).
fn on_step_timeout(run_dir: &Path) -> super::watchdog::OnTimeout {
    let run_dir = run_dir.to_path_buf();
    Box::new(move |msg| {
        let ckpt_dir = run_dir.join("checkpoints");
        let saved = checkpoint::list(&ckpt_dir).is_ok_and(|l| !l.is_empty());
        let next = if saved {
            format!(
                "a resume continues from the newest checkpoint in {}: lmtrain train --resume {}",
                ckpt_dir.display(),
                run_dir.display()
            )
        } else {
            "the run saved no checkpoint yet, so start it again".to_string()
        };
        let text = format!(
            "error: {msg}. Stopping with exit status {EXIT_STEP_TIMEOUT}: {next} (raise train.step_timeout_s if the step is merely slow)"
        );
        eprintln!("\n{text}");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .open(run_dir.join("train.log"))
        {
            use std::io::Write;
            let _ = writeln!(f, "{text}");
        }
        std::process::exit(EXIT_STEP_TIMEOUT);
    })
}

/// How the loop takes its steps: on one device, or data-parallel.
trait Stepper<T: Task> {
    /// Optimizer step `state.step + 1`; `state` is worker 0's.
    fn step(
        &mut self,
        task: &mut T,
        state: &mut TrainState,
        specs: &[ParamSpec],
        cfg: &LoopConfig,
        device: &Device,
        extras: StepExtras,
    ) -> Result<StepOutput>;

    /// Makes every other worker's replica a copy of worker 0's `state` (at the start, on
    /// resume and after a rollback).
    fn replicate(&mut self, state: &TrainState, specs: &[ParamSpec]) -> Result<()>;

    /// A line for train.log, if any.
    fn describe(&self) -> Option<String>;

    /// The number of workers (1 on one device).
    fn workers(&self) -> usize;

    /// Where the workers record their phase within a step, for the step watchdog.
    fn progress(&self) -> Option<Arc<StepProgress>>;
}

/// The single-device step, unchanged.
struct SingleDevice;

impl<T: Task> Stepper<T> for SingleDevice {
    fn step(
        &mut self,
        task: &mut T,
        state: &mut TrainState,
        specs: &[ParamSpec],
        cfg: &LoopConfig,
        device: &Device,
        extras: StepExtras,
    ) -> Result<StepOutput> {
        optimizer_step(task, state, specs, cfg, device, extras)
    }

    fn replicate(&mut self, _state: &TrainState, _specs: &[ParamSpec]) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        None
    }

    fn workers(&self) -> usize {
        1
    }

    fn progress(&self) -> Option<Arc<StepProgress>> {
        None
    }
}

/// Worker 0's collective (its state is the loop's) and the other workers.
struct DataParallelStepper {
    progress: Arc<StepProgress>,
    comm0: Option<Box<dyn AllReduce>>,
    others: Vec<Worker<Box<dyn AllReduce>>>,
    description: String,
}

/// A state holding nothing, in the place of one moved out for a step.
fn empty_state() -> TrainState {
    TrainState::fresh(Vec::new(), false)
}

impl<T> Stepper<T> for DataParallelStepper
where
    T: Task + Sync,
    T::Batch: RowSplit + Send,
{
    fn step(
        &mut self,
        task: &mut T,
        state: &mut TrainState,
        specs: &[ParamSpec],
        cfg: &LoopConfig,
        device: &Device,
        extras: StepExtras,
    ) -> Result<StepOutput> {
        let comm = self
            .comm0
            .take()
            .context("a data-parallel step failed before; the group is broken")?;
        let mut workers = Vec::with_capacity(1 + self.others.len());
        workers.push(Worker {
            device: device.clone(),
            state: std::mem::replace(state, empty_state()),
            comm,
            // Worker 0 runs on this (the trainer's) thread's stream.
            stream: cubecl_environment::stream::StreamId::current(),
        });
        workers.append(&mut self.others);
        let outs = data_parallel_step(
            task,
            &mut workers,
            specs,
            cfg,
            extras.grad_norm,
            Some(&self.progress),
        );
        let mut workers = workers.into_iter();
        let w0 = workers.next().context("worker 0 went missing")?;
        *state = w0.state;
        self.comm0 = Some(w0.comm);
        self.others = workers.collect();
        // Every worker returns the same (all-reduced) loss and norm; worker 0's are the run's.
        Ok(outs?.swap_remove(0))
    }

    fn replicate(&mut self, state: &TrainState, specs: &[ParamSpec]) -> Result<()> {
        let host = |ts: &[Tensor<1>]| download(ts);
        let (params, m, v) = (
            host(&state.params)?,
            host(&state.opt.m)?,
            host(&state.opt.v)?,
        );
        let ema = state.ema.as_deref().map(host).transpose()?;
        for w in &mut self.others {
            // Uploaded on the worker's own stream, where its steps will use them.
            let device = w.device.clone();
            let up = |h: &HostParams| upload(specs, h, &device);
            w.state = w.stream.executes(|| -> Result<TrainState> {
                Ok(TrainState {
                    step: state.step,
                    tokens: state.tokens,
                    params: up(&params)?,
                    ema: ema.as_ref().map(up).transpose()?,
                    opt: AdamW {
                        m: up(&m)?,
                        v: up(&v)?,
                    },
                    rollbacks: state.rollbacks,
                })
            })?;
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(self.description.clone())
    }

    fn workers(&self) -> usize {
        1 + self.others.len()
    }

    fn progress(&self) -> Option<Arc<StepProgress>> {
        Some(self.progress.clone())
    }
}

fn train_with<T: Task>(
    task: &mut T,
    opts: TrainOptions,
    stepper: &mut dyn Stepper<T>,
) -> Result<RunOutcome> {
    let cfg = &opts.config;
    let device = &opts.device;
    let specs = task.specs().to_vec();
    let ckpt_dir = opts.run_dir.join("checkpoints");
    let max_steps = cfg.train.max_steps;

    // BEMA's θ₀ (`ema.kind = "bema"`): the trainer keeps the plain EMA in `state.ema` and θ₀
    // here, and evaluates and saves BEMA_t = α_t(θ_t − θ₀) + EMA_t (see `super::ema`).
    let (mut state, mut last_val, mut bema) = match &opts.resume_from {
        Some(path) => load_state(task, path, &specs, cfg, device)?,
        None => {
            let params = upload(&specs, &task.init_params(cfg.train.seed), device)?;
            let bema = uses_bema(cfg).then(|| Bema::within_burn_in(&params));
            let state = TrainState::fresh(params, cfg.ema.enabled);
            (state, (None, None), bema)
        }
    };

    // Identical replicas on every worker (fresh: from the seed; resumed: from the checkpoint).
    stepper.replicate(&state, &specs)?;

    // A crash leaves rows after the checkpoint; the steps they describe are about to run again.
    let mut rewound = Vec::new();
    if opts.resume_from.is_some() {
        for name in std::iter::once("metrics.jsonl").chain(task.step_logs().iter().copied()) {
            let n = super::log_rewind::rewind_jsonl(&opts.run_dir.join(name), state.step)?;
            if n > 0 {
                rewound.push(format!(
                    "resume: dropped {n} line(s) after step {} from {name} (logged after the checkpoint, before the run stopped)",
                    state.step
                ));
            }
        }
    }
    let mut log = RunLog::open(&opts.run_dir, state.step, max_steps)?;
    for line in &rewound {
        log.line(line)?;
    }
    if let Some(line) = stepper.describe() {
        log.line(&line)?;
    }
    if state.step >= max_steps {
        log.line(&format!(
            "nothing to do: the run is at step {} and train.max_steps = {max_steps}; raise it with --set train.max_steps=N",
            state.step
        ))?;
        log.finish();
        return Ok(RunOutcome {
            final_step: state.step,
            interrupted: false,
            last_checkpoint: checkpoint::list(&ckpt_dir)?.pop(),
            last_row: None,
            first_step_seconds: None,
        });
    }

    // The step watchdog (train.step_timeout_s): a step that hangs, e.g. in a collective whose
    // other worker died, ends the process; the newest checkpoint is where a resume continues.
    let watchdog = match cfg.train.step_timeout(stepper.workers()) {
        Some(limit) => {
            log.line(&format!(
                "step watchdog: a step may take {} s (train.step_timeout_s; the first of this run {} s)",
                seconds(limit.as_secs_f64()),
                seconds(10.0 * limit.as_secs_f64())
            ))?;
            Some(
                Watchdog::start(stepper.progress(), limit, on_step_timeout(&opts.run_dir))
                    .context("cannot start the step watchdog's thread")?,
            )
        }
        None => None,
    };

    let mut interval_loss: Option<Tensor<1>> = None;
    // With on_nonfinite = "skip": how many of the interval's steps were applied (on the device).
    let mut interval_applied: Option<Tensor<1>> = None;
    let mut interval_steps = 0u64;
    let mut interval_tokens = 0u64;
    let mut interval_start = Instant::now();
    // A resumed run's newest checkpoint is its last good one until this run saves another.
    let mut last_checkpoint = checkpoint::list(&ckpt_dir)?.pop();
    let mut last_row = None;
    let mut interrupted = false;
    let loop_start = Instant::now();
    let mut first_step_seconds = None;
    let first_step = state.step + 1;

    // Log steps as decided below, less an interruption, which cannot be foreseen: a row logged
    // because of one has no gradient norm when clipping is off.
    let log_step = |t: u64| t == 1 || t.is_multiple_of(cfg.train.log_every) || t == max_steps;
    while state.step < max_steps {
        let extras = StepExtras {
            grad_norm: log_step(state.step + 1),
            mark: None,
        };
        crate::fault::at(
            crate::fault::Point::Step,
            &format!("step {}", state.step + 1),
        );
        if let Some(w) = &watchdog {
            w.arm(state.step + 1, state.step + 1 == first_step);
        }
        let out = stepper.step(task, &mut state, &specs, cfg, device, extras)?;
        let (t, lr, grad_norm) = (state.step, out.lr, out.grad_norm);
        // Read before the untimed part of the iteration, so that the watchdog covers the
        // step's device work, which a GPU backend runs after `step` returns.
        let step_probe = watchdog.as_ref().map(|_| out.loss.clone());
        if let Some(b) = bema.as_mut() {
            b.after_step(t, &state.params, &cfg.ema);
        }
        interval_tokens += out.tokens;
        let loss = match &out.applied {
            // A skipped step's loss is left out of the interval's mean (0·NaN would be NaN).
            Some(a) => out
                .loss
                .clone()
                .mask_where(a.clone().equal_elem(0.0), out.loss.zeros_like()),
            None => out.loss,
        };
        interval_loss = Some(match interval_loss {
            None => loss,
            Some(s) => s + loss,
        });
        if let Some(a) = out.applied {
            interval_applied = Some(match interval_applied {
                None => a,
                Some(s) => s + a,
            });
        }
        interval_steps += 1;
        log.progress(t);
        for note in task.take_notes() {
            log.line(&note)?;
        }

        let stop = opts.stop.load(Ordering::SeqCst);
        let last = t == max_steps;
        let ge = task.evaluate_every();
        let do_gen = ge > 0 && (t.is_multiple_of(ge) || last);
        // Every generation evaluation also validates, so that the statistics can pair them.
        let do_val = t.is_multiple_of(cfg.val_every) || last || do_gen;
        // Under "rollback" a checkpoint step reads its loss first, so a diverged state is rolled
        // back rather than refused at the save.
        let do_log = log_step(t)
            || stop
            || (cfg.train.on_nonfinite == OnNonfinite::Rollback
                && t.is_multiple_of(cfg.checkpoint.every));
        if let Some(w) = &watchdog {
            let checkpoint_now = t.is_multiple_of(cfg.checkpoint.every) || last || stop;
            if let Some(p) = step_probe.filter(|_| do_log || do_val || checkpoint_now) {
                read_scalar(p, "the training loss")?;
            }
            w.disarm();
        }
        if do_log || do_val {
            let mut row = MetricsRow {
                step: t,
                tokens: state.tokens,
                lr,
                ..Default::default()
            };
            if do_log {
                if let Some(sum) = interval_loss.take() {
                    let applied = match interval_applied.take() {
                        Some(a) => read_scalar(a, "the applied-step count")?.round() as u64,
                        None => interval_steps,
                    };
                    let loss = read_scalar(sum, "the training loss")? / applied.max(1) as f64;
                    if applied < interval_steps {
                        let skipped = interval_steps - applied;
                        row.extra.insert("skipped_steps".into(), skipped as f64);
                        log.line(&format!(
                            "skipped {skipped} of the {interval_steps} steps up to step {t}: a non-finite loss or gradient norm (train.on_nonfinite = \"skip\": weights, moments and EMA left as they were)"
                        ))?;
                    }
                    if !loss.is_finite() && cfg.train.on_nonfinite == OnNonfinite::Rollback {
                        let back = rollback(
                            task,
                            &mut state,
                            &specs,
                            cfg,
                            device,
                            &opts.run_dir,
                            &ckpt_dir,
                            t,
                            loss,
                        )?;
                        stepper.replicate(&state, &specs)?;
                        log = RunLog::open(&opts.run_dir, state.step, max_steps)?;
                        log.line(&back.message)?;
                        last_val = back.last_val;
                        bema = back.bema;
                        interval_steps = 0;
                        interval_tokens = 0;
                        interval_start = Instant::now();
                        continue;
                    }
                    if !loss.is_finite() {
                        bail!(
                            "the training loss is {loss} at step {t}: training diverged. {}",
                            resume_hint(last_checkpoint.as_deref())
                        );
                    }
                    row.train_loss = Some(loss);
                    row.grad_norm = grad_norm
                        .map(|g| read_scalar(g, "the gradient norm"))
                        .transpose()?;
                    if t == first_step {
                        // On a GPU this is where kernels compile and autotune: the figure that
                        // `lmtrain warmup` and a carried kernel cache bring down.
                        let secs = loop_start.elapsed().as_secs_f64();
                        first_step_seconds = Some(secs);
                        log.line(&format!(
                            "first step (step {t}) took {secs:.2} s, kernel compilation and autotuning included"
                        ))?;
                    }
                    let secs = interval_start.elapsed().as_secs_f64().max(1e-9);
                    row.tok_per_s = Some(interval_tokens as f64 / secs);
                }
                interval_steps = 0;
                interval_tokens = 0;
            }
            // The EMA weights as evaluated: the EMA, or BEMA_t for a BEMA run.
            let ema_weights = if do_val || do_gen {
                evaluated_ema(&state, bema.as_ref(), cfg)
            } else {
                None
            };
            if do_val {
                crate::fault::at(
                    crate::fault::Point::Validation,
                    &format!("the validation of step {t}"),
                );
                let raw = task.val_loss(&state.params, device)?;
                row.val_loss_raw = Some(raw);
                if let Some(e) = &ema_weights {
                    row.val_loss_ema = Some(task.val_loss(e, device)?);
                }
                last_val = (row.val_loss_raw, row.val_loss_ema);
            }
            if do_gen {
                crate::fault::at(
                    crate::fault::Point::Generation,
                    &format!("the evaluation of step {t}"),
                );
                let metrics = task.evaluate(t, &state.params, ema_weights.as_deref(), device)?;
                row.extra.extend(metrics);
            }
            log.row(&row, max_steps)?;
            last_row = Some(row);
            if do_log {
                interval_start = Instant::now();
            }
        }

        // A signal that arrived during this step's validation or evaluation stops here too.
        let stop = stop || opts.stop.load(Ordering::SeqCst);
        if t.is_multiple_of(cfg.checkpoint.every) || last || stop {
            let last_good = last_checkpoint.as_deref();
            let path = save_checkpoint(
                task,
                &opts,
                &specs,
                &state,
                bema.as_ref(),
                last_val,
                &ckpt_dir,
                last_good,
            )?;
            log.line(&format!("checkpoint step {t}: {}", path.display()))?;
            checkpoint::prune(&ckpt_dir, cfg.checkpoint.keep_last)?;
            last_checkpoint = Some(path);
        }
        // And one during the checkpoint write: that checkpoint is this step's, so stop now.
        let stop = stop || (last_checkpoint.is_some() && opts.stop.load(Ordering::SeqCst));
        if stop && !last {
            interrupted = true;
            if let Some(p) = &last_checkpoint {
                log.line(&format!(
                    "interrupted at step {t}; saved {}. Continue with: lmtrain train --resume {}",
                    p.display(),
                    opts.run_dir.display()
                ))?;
            }
            break;
        }
    }
    log.finish();
    Ok(RunOutcome {
        final_step: state.step,
        interrupted,
        last_checkpoint,
        last_row,
        first_step_seconds,
    })
}

/// The last validation losses, raw and EMA.
type LastVal = (Option<f64>, Option<f64>);

/// Whether the run keeps BEMA's θ₀.
fn uses_bema(cfg: &LoopConfig) -> bool {
    cfg.ema.enabled && matches!(cfg.ema.kind, crate::config::EmaKind::Bema { .. })
}

/// The weights the run evaluates and saves as its EMA at the current step: the EMA, or BEMA_t.
fn evaluated_ema(
    state: &TrainState,
    bema: Option<&Bema>,
    cfg: &LoopConfig,
) -> Option<Vec<Tensor<1>>> {
    let e = state.ema.as_ref()?;
    Some(ema::evaluated(state.step, &cfg.ema, e, &state.params, bema))
}

/// A checkpoint into a [`TrainState`] on the device, with the task's data cursor restored (on
/// resume, and on a rollback), and BEMA's θ₀ when the run uses it.
fn load_state<T: Task>(
    task: &mut T,
    path: &Path,
    specs: &[ParamSpec],
    cfg: &LoopConfig,
    device: &Device,
) -> Result<(TrainState, LastVal, Option<Bema>)> {
    let (meta, saved, saved_bema) = checkpoint::load_with_bema(path, Some(specs))?;
    if cfg.ema.enabled && saved.ema.is_none() {
        bail!(
            "checkpoint {} has no EMA weights but ema.enabled = true: incompatible",
            path.display()
        );
    }
    // A BEMA checkpoint's `ema.*` are the corrected weights; the recursion continues from the
    // plain EMA, saved beside them.
    let plain_ema = match &saved_bema {
        Some(b) => Some(&b.ema),
        None => saved.ema.as_ref(),
    };
    let params = upload(specs, &saved.params, device)?;
    let bema = if uses_bema(cfg) {
        Some(match &saved_bema {
            Some(b) => Bema {
                theta0: upload(specs, &b.theta0, device)?,
            },
            // Within the burn-in θ₀ is the iterate, so none needs to have been saved.
            None if meta.step <= cfg.ema.burn_in => Bema::within_burn_in(&params),
            None => bail!(
                "checkpoint {} holds no BEMA θ₀ (ema0.* tensors) and is past the EMA burn-in (step {} > ema.burn_in = {}): it was not written by an ema.kind = \"bema\" run. Resume it with the ema.kind it was trained with",
                path.display(),
                meta.step,
                cfg.ema.burn_in
            ),
        })
    } else {
        None
    };
    task.restore_cursor(&meta.cursor)
        .with_context(|| format!("restoring the data cursor of {}", path.display()))?;
    let state = TrainState {
        step: meta.step,
        tokens: meta.tokens,
        params,
        ema: match plain_ema {
            Some(e) if cfg.ema.enabled => Some(upload(specs, e, device)?),
            _ => None,
        },
        opt: AdamW {
            m: upload(specs, &saved.adam_m, device)?,
            v: upload(specs, &saved.adam_v, device)?,
        },
        rollbacks: meta.rollbacks,
    };
    Ok((state, (meta.val_loss_raw, meta.val_loss_ema), bema))
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint<T: Task>(
    task: &T,
    opts: &TrainOptions,
    specs: &[ParamSpec],
    state: &TrainState,
    bema: Option<&Bema>,
    last_val: (Option<f64>, Option<f64>),
    dir: &Path,
    last_good: Option<&Path>,
) -> Result<PathBuf> {
    let meta = CheckpointMeta {
        format: checkpoint::FORMAT.into(),
        version: checkpoint::VERSION,
        step: state.step,
        tokens: state.tokens,
        cursor: task.cursor(),
        config: opts.config.toml.clone(),
        tokenizer_hash: opts.tokenizer_hash.clone(),
        val_loss_raw: last_val.0,
        val_loss_ema: last_val.1,
        has_ema: state.ema.is_some(),
        train_shards: opts.train_shards.clone(),
        checksum: None,
        rollbacks: state.rollbacks,
        task_info: task.info(),
    };
    let host = CheckpointState {
        params: download(&state.params)?,
        ema: evaluated_ema(state, bema, &opts.config)
            .as_deref()
            .map(download)
            .transpose()?,
        adam_m: download(&state.opt.m)?,
        adam_v: download(&state.opt.v)?,
        buffers: task.buffers(),
    };
    let bema_host = match (bema, &state.ema) {
        (Some(b), Some(e)) => Some(BemaState {
            theta0: download(&b.theta0)?,
            ema: download(e)?,
        }),
        _ => None,
    };
    // The loss is only read at log steps (reading it every step would sync the device), so a
    // divergence between two log steps shows up here first. Non-finite weights are never saved,
    // so the checkpoint before stays the last good one.
    let weights = [
        ("weights", Some(&host.params)),
        ("EMA weights", host.ema.as_ref()),
    ];
    for (what, values) in weights {
        if let Some(name) = values.and_then(|v| first_non_finite(specs, v)) {
            bail!(
                "training diverged by step {}: the {what} hold non-finite values (first in {name}), so that step is not saved. {}",
                state.step,
                resume_hint(last_good)
            );
        }
    }
    checkpoint::save_with_bema(dir, specs, &host, bema_host.as_ref(), &meta)
}

/// The name of the first parameter holding a NaN or an infinity.
fn first_non_finite<'a>(specs: &'a [ParamSpec], values: &HostParams) -> Option<&'a str> {
    specs
        .iter()
        .zip(values)
        .find(|(_, v)| v.iter().any(|x| !x.is_finite()))
        .map(|(spec, _)| spec.name.as_str())
}

/// Where a diverged run can go on from.
/// What a rollback did.
struct Rollback {
    message: String,
    last_val: (Option<f64>, Option<f64>),
    bema: Option<Bema>,
}

/// `train.on_nonfinite = "rollback"`: back to the newest intact checkpoint, with the learning
/// rate scaled by one more factor of `train.rollback_lr_factor`; the logs after that
/// checkpoint are rewound. An error when the budget of `train.max_rollbacks` is spent or no
/// checkpoint exists.
#[allow(clippy::too_many_arguments)]
fn rollback<T: Task>(
    task: &mut T,
    state: &mut TrainState,
    specs: &[ParamSpec],
    cfg: &LoopConfig,
    device: &Device,
    run_dir: &Path,
    ckpt_dir: &Path,
    t: u64,
    loss: f64,
) -> Result<Rollback> {
    let used = state.rollbacks;
    if used >= cfg.train.max_rollbacks {
        bail!(
            "the training loss is {loss} at step {t} and the run has used its {used} rollback(s) (train.max_rollbacks): training diverged. Lower optim.lr or set optim.grad_clip, then resume"
        );
    }
    if checkpoint::list(ckpt_dir)?.is_empty() {
        bail!(
            "the training loss is {loss} at step {t} and there is no checkpoint to roll back to: lower optim.lr or set optim.grad_clip and start again (or checkpoint more often)"
        );
    }
    let path = checkpoint::resolve(ckpt_dir)?;
    let (mut restored, last_val, bema) = load_state(task, &path, specs, cfg, device)?;
    restored.rollbacks = used + 1;
    for name in std::iter::once("metrics.jsonl").chain(task.step_logs().iter().copied()) {
        super::log_rewind::rewind_jsonl(&run_dir.join(name), restored.step)?;
    }
    let message = format!(
        "rollback {}/{} at step {t}: the training loss was {loss}; back to step {} ({}), learning rate × {}^{} (train.on_nonfinite = \"rollback\")",
        used + 1,
        cfg.train.max_rollbacks,
        restored.step,
        path.display(),
        cfg.train.rollback_lr_factor,
        used + 1
    );
    *state = restored;
    Ok(Rollback {
        message,
        last_val,
        bema,
    })
}

fn resume_hint(last_good: Option<&Path>) -> String {
    match last_good {
        Some(p) => format!(
            "The last good checkpoint is {}; lower optim.lr or set optim.grad_clip, then resume from it",
            p.display()
        ),
        None => "No checkpoint was saved yet; lower optim.lr or set optim.grad_clip and start again"
            .into(),
    }
}
