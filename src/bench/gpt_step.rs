//! Times lmtrain's training step the way the reference does: the median of per-step wall times
//! after warm-up, with a device sync after every step. The step is the trainer's own
//! [`optimizer_step`]: forward + backward + AdamW, first with clipping and EMA off (as the
//! reference has neither), then with both on.

use std::time::Instant;

use anyhow::{anyhow, Result};
use burn::tensor::{Device, FloatDType, Tensor};

use super::permutation_task::PermutationTask;
use crate::config::*;
use crate::model::params::{count, upload};
use crate::model::{Gpt, GptShape};

use crate::train::step::{optimizer_step, tracked_copies, PhaseEnd, StepExtras, TrainState};
use crate::train::Task;

/// The reference's model shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    pub layers: usize,
    pub d_model: usize,
    pub heads: usize,
    pub seq: usize,
    pub batch: usize,
    pub vocab: usize,
}

impl BenchShape {
    /// Config A: 6 layers, d 384, 6 heads, seq 256, batch 64, vocab 8192 (13.9M parameters).
    pub const A: BenchShape = BenchShape {
        layers: 6,
        d_model: 384,
        heads: 6,
        seq: 256,
        batch: 64,
        vocab: 8192,
    };
    /// Config B: 12 layers, d 768, 12 heads, seq 1024, batch 16, vocab 50304 (124M, GPT-2 small).
    pub const B: BenchShape = BenchShape {
        layers: 12,
        d_model: 768,
        heads: 12,
        seq: 1024,
        batch: 16,
        vocab: 50304,
    };
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub shape: BenchShape,
    pub steps: usize,
    pub warmup_steps: usize,
    pub lr: f64,
    /// Global clipping at 1.0 and the EMA of iterates, as a real run has them.
    pub clip_and_ema: bool,
    pub peak_tflops: f64,
    pub label: String,
    pub seed: u64,
    /// The device's float dtype, as given to `--dtype` (for the RESULT line).
    pub dtype: String,
    /// How the model computes (bf16 matmul operands, gather embedding).
    pub compute: crate::model::Compute,
    /// For `--profile`: sync the device after each step's forward and backward passes, so that
    /// the per-kernel log splits every step into forward, backward and update launches; and
    /// skip [`memory_probe`], whose extra step (no update) would otherwise end the log.
    pub profiling: bool,
    /// Print `LOSS label=… step=… loss=…` every this many steps and at the last (0: never), for
    /// loss curves (`scripts/loss_band.sh`). The loss is read after the step is timed.
    pub loss_every: usize,
}

#[derive(Clone, Debug)]
pub struct BenchResult {
    pub params: usize,
    pub ms_per_step: f64,
    pub mean_ms: f64,
    pub first_step_ms: f64,
    pub tokens_per_s: f64,
    pub tflops: f64,
    pub loss_first: f64,
    pub loss_last: f64,
    /// Bytes the device allocator holds after the last step (an upper bound on the step's peak
    /// allocation; None where the backend does not report it, e.g. the CPU).
    pub reserved_bytes: Option<u64>,
    /// See [`memory_probe`].
    pub in_use_peak_sampled: Option<u64>,
}

/// A config that makes [`optimizer_step`] match the reference's optimizer: AdamW(lr, (0.9,
/// 0.95), eps 1e-8, weight decay 0.1), constant lr, one micro-batch, no dropout.
fn bench_config(o: &BenchOptions) -> Config {
    let s = &o.shape;
    Config {
        device: "auto".into(),
        task: Default::default(),
        model: ModelConfig {
            n_layer: s.layers,
            n_head: s.heads,
            n_embd: s.d_model,
            block_size: s.seq,
            dropout: 0.0,
            vocab_size: s.vocab,
            activation: Default::default(),
            init_from: None,
            // Unused: run_bench sets the model's compute from the bench options itself.
            fused_ops: false,
            bf16_matmuls: false,
            flash_attention: false,
            matmul: Default::default(),
        },
        tokenizer: TokenizerConfig::default(),
        data: DataConfig {
            train_glob: String::new(),
            val_glob: None,
            text_column: "text".into(),
            prepend_title: false,
            val_fraction: 0.01,
            tokenizer_docs: 0,
        },
        optim: OptimConfig {
            lr: o.lr,
            grad_clip: if o.clip_and_ema { 1.0 } else { 0.0 },
            ..OptimConfig::default()
        },
        schedule: ScheduleConfig {
            kind: ScheduleKind::Constant,
            warmup_steps: 0,
            decay_steps: 0,
            stable_steps: 0,
            min_lr: 0.0,
        },
        ema: EmaConfig {
            enabled: o.clip_and_ema,
            burn_in: 0,
            ..EmaConfig::default()
        },
        train: TrainConfig {
            max_steps: (o.steps + o.warmup_steps) as u64,
            batch_size: s.batch,
            seed: o.seed,
            out_dir: String::new(),
            run_name: None,
            log_every: 1,
            on_nonfinite: Default::default(),
            rollback_lr_factor: 0.5,
            max_rollbacks: 3,
            step_timeout_s: None,
        },
        eval: EvalConfig::default(),
        checkpoint: CheckpointConfig::default(),
    }
}

fn scalar(t: burn::tensor::Tensor<1>) -> Result<f64> {
    let v: f32 = t
        .cast(FloatDType::F32)
        .try_into_scalar()
        .map_err(|e| anyhow!("cannot read the loss: {e:?}"))?;
    Ok(v as f64)
}

pub fn run_bench(o: &BenchOptions, device: &Device) -> Result<BenchResult> {
    let cfg = bench_config(o);
    let loop_cfg = cfg.loop_config()?;
    let mut gpt = Gpt::new(GptShape::from(&cfg.model));
    gpt.compute = o.compute;
    let specs = gpt.specs().to_vec();
    let params_n = count(&specs);
    let mut task = PermutationTask::new(gpt, o.shape.batch, o.seed);
    // Uploaded values keep their f32 dtype whatever the device's default; a run in another
    // dtype (--dtype flex32|bf16|f16) casts its weights, so that the optimizer state and every
    // op downstream follow.
    let dtype = crate::device::parse_float_dtype(&o.dtype)?;
    let params: Vec<Tensor<1>> = upload(&specs, &task.init_params(o.seed), device)?
        .into_iter()
        .map(|p| {
            if dtype == FloatDType::F32 {
                p
            } else {
                p.cast(dtype)
            }
        })
        .collect();
    let mut state = TrainState::fresh(params, cfg.ema.enabled);
    let total = o.warmup_steps + o.steps;
    let mut times = Vec::with_capacity(o.steps);
    let (mut loss_first, mut loss_last, mut first_step_ms) = (f64::NAN, f64::NAN, 0.0);
    for step in 0..total {
        let t0 = Instant::now();
        let mut sync_at_phase_end = |at: PhaseEnd| -> Result<()> {
            device.sync().map_err(|e| {
                anyhow!("the device failed after the {at:?} pass of step {step}: {e:?}")
            })
        };
        // No gradient norm unless clipping needs it: the reference computes none.
        let extras = StepExtras {
            grad_norm: false,
            mark: if o.profiling {
                Some(&mut sync_at_phase_end)
            } else {
                None
            },
        };
        let out = optimizer_step(&mut task, &mut state, &specs, &loop_cfg, device, extras)?;
        device
            .sync()
            .map_err(|e| anyhow!("the device failed during step {step}: {e:?}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if step == 0 {
            loss_first = scalar(out.loss.clone())?;
            first_step_ms = ms;
        } else if step + 1 == total {
            loss_last = scalar(out.loss.clone())?;
        }
        if step >= o.warmup_steps {
            times.push(ms);
        }
        if o.loss_every > 0 && (step % o.loss_every == 0 || step + 1 == total) {
            println!(
                "LOSS label={} step={step} loss={:.6e}",
                o.label,
                scalar(out.loss.clone())?
            );
        }
        if step < 3 || step + 1 == o.warmup_steps {
            eprintln!("[lmtrain] step {step:>3} {ms:.1} ms");
        }
    }
    let in_use_peak_sampled = if !o.profiling {
        memory_probe(&mut task, &state, device)?
    } else {
        None
    };
    let mean_ms = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let ms_per_step = if n % 2 == 1 {
        times[n / 2]
    } else {
        0.5 * (times[n / 2 - 1] + times[n / 2])
    };
    let s = &o.shape;
    // The reference's FLOP count: 6·N per token for N = parameters minus position embeddings,
    // plus 12·L·d·T for attention.
    let n_flops = (params_n - s.seq * s.d_model) as f64;
    let flops_per_step =
        (6.0 * n_flops + 12.0 * (s.layers * s.d_model * s.seq) as f64) * (s.batch * s.seq) as f64;
    let tokens = (s.batch * s.seq) as f64;
    Ok(BenchResult {
        params: params_n,
        ms_per_step,
        mean_ms,
        first_step_ms,
        tokens_per_s: tokens / (ms_per_step / 1e3),
        tflops: flops_per_step / (ms_per_step / 1e3) / 1e12,
        loss_first,
        loss_last,
        reserved_bytes: device.memory_pool_usage().map(|u| u.bytes_reserved),
        in_use_peak_sampled,
    })
}

/// Device bytes in use at the two points of a training step where the most is alive — after
/// the forward pass (parameters, optimizer state and every activation kept for the backward
/// pass) and after the backward pass (gradients) — on one extra, untimed step. burn reports no
/// peak counter; this is a lower bound on the peak, comparable to PyTorch's
/// `max_memory_allocated` up to the transients inside each pass.
fn memory_probe(
    task: &mut PermutationTask,
    state: &TrainState,
    device: &Device,
) -> Result<Option<u64>> {
    let in_use = || -> Result<Option<u64>> {
        device
            .sync()
            .map_err(|e| anyhow!("the device failed during the memory probe: {e:?}"))?;
        Ok(device.memory_pool_usage().map(|u| u.bytes_in_use))
    };
    let batch = task.next_batch(device)?;
    let loss = task.loss(&tracked_copies(&state.params), &batch, true);
    let after_forward = in_use()?;
    let grads = loss.backward();
    let after_backward = in_use()?;
    drop(grads);
    Ok(after_forward.max(after_backward))
}

/// The reference's `RESULT key=value ...` line, with lmtrain's extra keys at the end
/// (`loss_last_full`: the last loss to 9 significant digits, where the reference's format keeps
/// 4 decimals, so that two backends' steps can be compared closely). With the cuBLASLt linears
/// on CUDA it ends in `lt_fallbacks=G/E`: GEMMs the op computed by its reference body since the
/// process started (its time is then not cuBLASLt's), and GEMMs cuBLASLt ran without their
/// epilogue.
pub fn result_line(o: &BenchOptions, r: &BenchResult, backend: &str) -> String {
    let s = &o.shape;
    let fallbacks = if o.compute.cublaslt {
        let (g, e) = crate::model::cublaslt::fallback_counts();
        format!(" lt_fallbacks={g}/{e}")
    } else {
        String::new()
    };
    format!(
        "RESULT impl=lmtrain backend={backend} dtype={} compile=0 label={} layers={} d_model={} heads={} seq={} batch={} vocab={} params={} ms_per_step={:.3} tokens_per_s={:.0} tflops={:.2} mfu_pct={:.2} loss_first={:.4} loss_last={:.4} clip_ema={} first_step_ms={:.1} max_mem_gib={:.2} in_use_sampled_gib={:.2} loss_last_full={:.8e} {}{fallbacks}",
        o.dtype,
        o.label,
        s.layers,
        s.d_model,
        s.heads,
        s.seq,
        s.batch,
        s.vocab,
        r.params,
        r.ms_per_step,
        r.tokens_per_s,
        r.tflops,
        100.0 * r.tflops / o.peak_tflops,
        r.loss_first,
        r.loss_last,
        u8::from(o.clip_and_ema),
        r.first_step_ms,
        r.reserved_bytes.unwrap_or(0) as f64 / (1u64 << 30) as f64,
        r.in_use_peak_sampled.unwrap_or(0) as f64 / (1u64 << 30) as f64,
        r.loss_last,
        o.compute.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParamSpec;

    /// A one-layer GPT on the CPU taking steps of two micro-batches, with clipping and EMA on.
    fn setup() -> (PermutationTask, TrainState, Vec<ParamSpec>, Config, Device) {
        let o = BenchOptions {
            shape: BenchShape {
                layers: 1,
                d_model: 16,
                heads: 2,
                seq: 8,
                batch: 2,
                vocab: 32,
            },
            steps: 1,
            warmup_steps: 0,
            lr: 1e-2,
            clip_and_ema: true,
            peak_tflops: 1.0,
            label: "-".into(),
            seed: 3,
            dtype: "f32".into(),
            compute: Default::default(),
            profiling: false,
            loss_every: 0,
        };
        let mut cfg = bench_config(&o);
        cfg.optim.grad_accum = 2;
        let device = Device::flex();
        let gpt = Gpt::new(GptShape::from(&cfg.model));
        let specs = gpt.specs().to_vec();
        let task = PermutationTask::new(gpt, o.shape.batch, o.seed);
        let params = upload(&specs, &task.init_params(o.seed), &device).unwrap();
        let state = TrainState::fresh(params, true);
        (task, state, specs, cfg, device)
    }

    fn values(params: &[Tensor<1>]) -> Vec<Vec<f32>> {
        params
            .iter()
            .map(|p| p.clone().into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn a_marked_step_marks_each_micro_batch_and_takes_the_same_step() {
        let (mut task, mut state, specs, cfg, device) = setup();
        let mut marks = Vec::new();
        let mut record = |at| {
            marks.push(at);
            Ok(())
        };
        let extras = StepExtras {
            grad_norm: false,
            mark: Some(&mut record),
        };
        let marked = optimizer_step(
            &mut task,
            &mut state,
            &specs,
            &cfg.loop_config().unwrap(),
            &device,
            extras,
        )
        .unwrap();
        use PhaseEnd::{Backward, Forward};
        assert_eq!(marks, [Forward, Backward, Forward, Backward]);
        assert!(
            marked.grad_norm.is_some(),
            "clipping is on, so the norm is computed"
        );

        let (mut task2, mut state2, ..) = setup();
        let unmarked = StepExtras {
            grad_norm: false,
            mark: None,
        };
        let plain = optimizer_step(
            &mut task2,
            &mut state2,
            &specs,
            &cfg.loop_config().unwrap(),
            &device,
            unmarked,
        )
        .unwrap();
        assert_eq!(scalar(marked.loss).unwrap(), scalar(plain.loss).unwrap());
        assert_eq!(values(&state.params), values(&state2.params));
        assert_ne!(
            values(&state.params),
            values(&setup().1.params),
            "the step updated nothing"
        );
    }

    #[test]
    fn without_clipping_the_norm_is_skipped_unless_asked_for() {
        let (mut task, mut state, specs, mut cfg, device) = setup();
        cfg.optim.grad_clip = 0.0;
        let extras = |grad_norm| StepExtras {
            grad_norm,
            mark: None,
        };
        let out = optimizer_step(
            &mut task,
            &mut state,
            &specs,
            &cfg.loop_config().unwrap(),
            &device,
            extras(false),
        );
        assert!(out.unwrap().grad_norm.is_none());
        let out = optimizer_step(
            &mut task,
            &mut state,
            &specs,
            &cfg.loop_config().unwrap(),
            &device,
            extras(true),
        )
        .unwrap();
        let norm = scalar(out.grad_norm.expect("asked for")).unwrap();
        assert!(norm.is_finite() && norm > 0.0, "{norm}");
    }

    #[test]
    fn a_failing_marker_stops_the_step_before_the_update() {
        let (mut task, mut state, specs, cfg, device) = setup();
        let before = values(&state.params);
        let mut fail_after_backward = |at| match at {
            PhaseEnd::Backward => Err(anyhow!("the device failed")),
            PhaseEnd::Forward => Ok(()),
        };
        let extras = StepExtras {
            grad_norm: true,
            mark: Some(&mut fail_after_backward),
        };
        let result = optimizer_step(
            &mut task,
            &mut state,
            &specs,
            &cfg.loop_config().unwrap(),
            &device,
            extras,
        );
        assert!(result.is_err());
        assert_eq!(state.step, 0);
        assert_eq!(values(&state.params), before);
    }
}
