//! Numerics against PyTorch, llm.c `test_gpt2` style: `tests/fixtures/gpt_tiny.safetensors` was
//! written by `scripts/make_fixture.py` (PyTorch on the CPU). It holds a tiny GPT's weights and a
//! batch, the logits, loss and every gradient at those weights, and 10 optimizer steps through
//! accumulation, clipping, warmup, both weight-decay groups and an EMA past its burn-in.
//!
//! Each check prints its largest relative error max|a − b| / max|b| and fails above tolerance.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use burn::tensor::{Device, Int, Tensor, TensorData};
use lmtrain::config::*;
use lmtrain::model::params::upload;
use lmtrain::model::{Activation, Compute, Gpt, GptShape, HostParams, ParamSpec};
use lmtrain::train::{checkpoint, train, Task, TrainOptions};
use safetensors::SafeTensors;

struct Fixture {
    bytes: Vec<u8>,
    cfg: serde_json::Value,
}

impl Fixture {
    fn load() -> Self {
        let path = super::common::repo().join("tests/fixtures/gpt_tiny.safetensors");
        let bytes = std::fs::read(&path).expect("the committed fixture");
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let raw = header.metadata().as_ref().unwrap()["config"].clone();
        Self {
            cfg: serde_json::from_str(&raw).unwrap(),
            bytes,
        }
    }
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }
    fn f32s(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let v = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture tensor {name}"));
        v.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
    fn i64s(&self, name: &str) -> Vec<i64> {
        let st = self.st();
        let v = st.tensor(name).unwrap();
        v.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
    fn u(&self, k: &str) -> usize {
        self.cfg[k].as_u64().unwrap() as usize
    }
    fn f(&self, k: &str) -> f64 {
        self.cfg[k].as_f64().unwrap()
    }
    fn gpt(&self) -> Gpt {
        Gpt::new(GptShape {
            n_layer: self.u("n_layer"),
            n_head: self.u("n_head"),
            n_embd: self.u("n_embd"),
            block_size: self.u("block_size"),
            vocab_size: self.u("vocab_size"),
            dropout: 0.0,
            activation: Activation::Exact,
        })
    }
    fn set(&self, prefix: &str, specs: &[ParamSpec]) -> HostParams {
        specs
            .iter()
            .map(|s| self.f32s(&format!("{prefix}{}", s.name)))
            .collect()
    }
    fn tokens(&self, name: &str, rows: std::ops::Range<usize>, device: &Device) -> Tensor<2, Int> {
        let t = self.u("block_size");
        let all = self.i64s(name);
        let data = all[rows.start * t..rows.end * t].to_vec();
        Tensor::from_data(TensorData::new(data, [rows.len(), t]), device)
    }
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    diff / scale.max(1e-30)
}

fn check(what: &str, got: &[f32], want: &[f32], tol: f64) -> f64 {
    let e = rel_err(got, want);
    println!("{what:<48} max rel err {e:.3e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{what}: relative error {e:.3e} exceeds {tol:.0e}");
    e
}

fn vec1(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
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

fn forward_and_gradients_match_pytorch_with(compute: Compute) {
    let fx = Fixture::load();
    let mut gpt = fx.gpt();
    gpt.compute = compute;
    let device = Device::flex();
    let params = upload(gpt.specs(), &fx.set("param.", gpt.specs()), &device).unwrap();
    let b = fx.i64s("input").len() / fx.u("block_size");
    let input = fx.tokens("input", 0..b, &device);
    let target = fx.tokens("target", 0..b, &device);

    let logits = gpt.forward(&params, input.clone(), 0.0);
    let logits: Vec<f32> = logits.into_data().try_to_vec().unwrap();
    check("logits", &logits, &fx.f32s("logits"), 1e-4);

    let tracked: Vec<Tensor<1>> = params
        .iter()
        .map(|p| p.clone().autodiff().require_grad())
        .collect();
    let loss = gpt.loss(&tracked, input, target, 0.0);
    let grads = loss.backward();
    check("loss", &vec1(loss.inner()), &fx.f32s("loss"), 1e-4);
    let mut worst = 0.0f64;
    for (p, spec) in tracked.iter().zip(gpt.specs()) {
        let g = vec1(p.grad(&grads).expect("every parameter has a gradient"));
        let e = check(
            &format!("grad {}", spec.name),
            &g,
            &fx.f32s(&format!("grad.{}", spec.name)),
            1e-3,
        );
        worst = worst.max(e);
    }
    println!("largest gradient error: {worst:.3e}");
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
        self.fx.set("param.", self.gpt.specs())
    }
    fn next_batch(&mut self, device: &Device) -> Result<Self::Batch> {
        let mb = self.fx.u("micro_batch_size");
        let rows = self.micro * mb..(self.micro + 1) * mb;
        self.micro = (self.micro + 1) % self.fx.u("grad_accum");
        Ok((
            self.fx.tokens("input", rows.clone(), device),
            self.fx.tokens("target", rows, device),
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
    let fx = Fixture::load();
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
    check("learning rate per step", &lrs, &fx.f32s("lrs"), 1e-6);
    check(
        "loss trajectory (10 steps)",
        &losses,
        &fx.f32s("losses"),
        1e-4,
    );
    check(
        "pre-clip gradient norm per step",
        &norms,
        &fx.f32s("grad_norms"),
        1e-3,
    );

    let ckpt = outcome.last_checkpoint.expect("a final checkpoint");
    let (_, state) = checkpoint::load(&ckpt, Some(gpt.specs())).unwrap();
    let ema = state.ema.expect("EMA weights in the checkpoint");
    for (i, spec) in gpt.specs().iter().enumerate() {
        check(
            &format!("final {}", spec.name),
            &state.params[i],
            &fx.f32s(&format!("final.{}", spec.name)),
            1e-3,
        );
        check(
            &format!("ema {}", spec.name),
            &ema[i],
            &fx.f32s(&format!("ema.{}", spec.name)),
            1e-3,
        );
    }
}
