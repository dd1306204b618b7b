//! Numerics against PyTorch, llm.c `test_gpt2` style: `tests/fixtures/gpt_tiny.safetensors` was
//! written by `scripts/make_fixture.py` (PyTorch on the CPU). It holds a tiny GPT's weights and a
//! batch, the logits, loss and every gradient at those weights, and 10 optimizer steps through
//! accumulation, clipping, warmup, both weight-decay groups and an EMA past its burn-in.
//!
//! Each check prints its largest relative error max|a − b| / max|b| and fails above tolerance.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use burn::tensor::{Device, Int, Tensor};
use lmtrain::bench::check_fixture::{forward_and_gradients, rel_err, Fixture, FixtureCheck};
use lmtrain::config::*;
use lmtrain::model::{Activation, Compute, Gpt, HostParams, ParamSpec};
use lmtrain::train::{checkpoint, train, Task, TrainOptions};

fn fixture() -> Fixture {
    Fixture::load(&super::common::repo().join("tests/fixtures/gpt_tiny.safetensors"))
        .expect("the committed fixture")
}

fn check(what: &str, got: &[f32], want: &[f32], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len());
    let e = rel_err(got, want);
    println!("{what:<48} max rel err {e:.3e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{what}: relative error {e:.3e} exceeds {tol:.0e}");
    e
}

#[test]
fn forward_and_gradients_match_pytorch() {
    forward_and_gradients_match_pytorch_with(Compute::default());
}

/// The fused ops (closed-form backward passes, gather embedding) against the independent
/// reference too, not only against burn's plain ops.
#[test]
fn fused_ops_match_pytorch() {
    forward_and_gradients_match_pytorch_with(Compute::all_fused());
}

/// The cuBLASLt linears (here their reference GEMMs, bf16 operands) within the bf16 bounds
/// that `lmtrain check-fixture --matmul cublaslt` holds them to on CUDA.
#[test]
fn cublaslt_linears_match_pytorch_within_bf16_bounds() {
    let checks = forward_and_gradients_match_pytorch_with(Compute {
        cublaslt: true,
        ..Compute::default()
    });
    // bf16 operands change the numbers: an op that is not applied would show f32 errors.
    assert!(
        checks.iter().any(|c| c.rel_err > 1e-4),
        "bf16 operands left no trace"
    );
}

fn forward_and_gradients_match_pytorch_with(compute: Compute) -> Vec<FixtureCheck> {
    let checks = forward_and_gradients(&fixture(), compute, &Device::flex()).unwrap();
    for c in &checks {
        println!("{}", c.line());
    }
    for c in &checks {
        assert!(c.ok(), "{}", c.line());
    }
    let worst = checks.iter().map(|c| c.rel_err).fold(0.0, f64::max);
    println!("largest error: {worst:.3e}");
    checks
}

/// Feeds the fixture's batch to the real trainer: micro-batch m of every step is rows 2m..2m+2.
struct FixtureTask<'a> {
    fx: &'a Fixture,
    gpt: Gpt,
    micro: usize,
}

impl Task for FixtureTask<'_> {
    type Batch = (Tensor<2, Int>, Tensor<2, Int>);
    fn specs(&self) -> &[ParamSpec] {
        self.gpt.specs()
    }
    fn init_params(&self, _seed: u64) -> HostParams {
        self.fx.set("param.", self.gpt.specs()).unwrap()
    }
    fn next_batch(&mut self, device: &Device) -> Result<Self::Batch> {
        let mb = self.fx.u("micro_batch_size");
        let rows = self.micro * mb..(self.micro + 1) * mb;
        self.micro = (self.micro + 1) % self.fx.u("grad_accum");
        Ok((
            self.fx.tokens("input", rows.clone(), device)?,
            self.fx.tokens("target", rows, device)?,
        ))
    }
    fn batch_tokens(&self, batch: &Self::Batch) -> usize {
        batch.0.shape().num_elements()
    }
    fn loss(&self, params: &[Tensor<1>], batch: &Self::Batch, _train: bool) -> Tensor<1> {
        self.gpt.loss(params, batch.0.clone(), batch.1.clone(), 0.0)
    }
    fn val_loss(&self, _params: &[Tensor<1>], _device: &Device) -> Result<f64> {
        Ok(0.0)
    }
    fn cursor(&self) -> serde_json::Value {
        serde_json::json!(self.micro)
    }
    fn restore_cursor(&mut self, c: &serde_json::Value) -> Result<()> {
        self.micro = c.as_u64().unwrap_or(0) as usize;
        Ok(())
    }
}

#[test]
fn ten_optimizer_steps_match_pytorch() {
    let fx = fixture();
    let gpt = fx.gpt();
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        device: "cpu".into(),
        task: Default::default(),
        model: ModelConfig {
            n_layer: fx.u("n_layer"),
            n_head: fx.u("n_head"),
            n_embd: fx.u("n_embd"),
            block_size: fx.u("block_size"),
            dropout: 0.0,
            vocab_size: fx.u("vocab_size"),
            activation: Activation::Exact,
            init_from: None,
            fused_ops: false,
            bf16_matmuls: false,
            flash_attention: false,
            matmul: Default::default(),
        },
        tokenizer: TokenizerConfig::default(),
        data: DataConfig {
            train_glob: "unused".into(),
            val_glob: None,
            text_column: "text".into(),
            prepend_title: false,
            val_fraction: 0.01,
            tokenizer_docs: 1,
        },
        optim: OptimConfig {
            kind: Default::default(),
            lr: fx.f("lr"),
            beta1: fx.f("beta1"),
            beta2: fx.f("beta2"),
            eps: fx.f("eps"),
            weight_decay: fx.f("weight_decay"),
            grad_clip: fx.f("grad_clip"),
            grad_accum: fx.u("grad_accum"),
        },
        schedule: ScheduleConfig {
            kind: ScheduleKind::Cosine,
            warmup_steps: fx.u("warmup_steps") as u64,
            decay_steps: fx.u("decay_steps") as u64,
            stable_steps: 0,
            min_lr: fx.f("min_lr"),
        },
        ema: EmaConfig {
            enabled: true,
            kind: EmaKind::Poly,
            power: fx.f("ema_power"),
            offset: fx.f("ema_offset"),
            burn_in: fx.u("ema_burn_in") as u64,
            min_beta: fx.f("ema_min_beta"),
            decay: 0.999,
            every: fx.u("ema_every") as u64,
        },
        train: TrainConfig {
            max_steps: fx.u("steps") as u64,
            batch_size: fx.u("micro_batch_size"),
            seed: 0,
            out_dir: tmp.path().display().to_string(),
            run_name: None,
            log_every: 1,
            on_nonfinite: Default::default(),
            rollback_lr_factor: 0.5,
            max_rollbacks: 3,
            step_timeout_s: None,
        },
        eval: EvalConfig {
            val_every: 1000,
            val_windows: 1,
            ..EvalConfig::default()
        },
        checkpoint: CheckpointConfig {
            every: 1000,
            keep_last: 1,
        },
    };
    let mut task = FixtureTask {
        fx: &fx,
        gpt: gpt.clone(),
        micro: 0,
    };
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let outcome = train(
        &mut task,
        TrainOptions {
            run_dir: run_dir.clone(),
            config: config.loop_config().unwrap(),
            device: Device::flex(),
            resume_from: None,
            tokenizer_hash: String::new(),
            train_shards: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        },
    )
    .expect("training on the fixture");
    assert_eq!(outcome.final_step, 10);

    let rows = super::common::metrics(&run_dir);
    let losses: Vec<f32> = rows
        .iter()
        .map(|r| r["train_loss"].as_f64().unwrap() as f32)
        .collect();
    let norms: Vec<f32> = rows
        .iter()
        .map(|r| r["grad_norm"].as_f64().unwrap() as f32)
        .collect();
    let lrs: Vec<f32> = rows
        .iter()
        .map(|r| r["lr"].as_f64().unwrap() as f32)
        .collect();
    check(
        "learning rate per step",
        &lrs,
        &fx.f32s("lrs").unwrap(),
        1e-6,
    );
    check(
        "loss trajectory (10 steps)",
        &losses,
        &fx.f32s("losses").unwrap(),
        1e-4,
    );
    check(
        "pre-clip gradient norm per step",
        &norms,
        &fx.f32s("grad_norms").unwrap(),
        1e-3,
    );

    let ckpt = outcome.last_checkpoint.expect("a final checkpoint");
    let (_, state) = checkpoint::load(&ckpt, Some(gpt.specs())).unwrap();
    let ema = state.ema.expect("EMA weights in the checkpoint");
    for (i, spec) in gpt.specs().iter().enumerate() {
        check(
            &format!("final {}", spec.name),
            &state.params[i],
            &fx.f32s(&format!("final.{}", spec.name)).unwrap(),
            1e-3,
        );
        check(
            &format!("ema {}", spec.name),
            &ema[i],
            &fx.f32s(&format!("ema.{}", spec.name)).unwrap(),
            1e-3,
        );
    }
}
