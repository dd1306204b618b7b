//! `lmtrain check-fixture`: the PyTorch fixture (`tests/fixtures/gpt_tiny.safetensors`, written
//! by `scripts/make_fixture.py` on the CPU, llm.c `test_gpt2` style) on any device and with any
//! [`Compute`] switches: the logits, the loss and every parameter's gradient at the fixture's
//! weights, each as max|a − b| / max|b| against PyTorch, against a stated bound.
//!
//! The integration test `fixture` runs the same check on the CPU; this command runs it where
//! cargo is absent (the GPU machine), e.g. with the cuBLASLt linears on CUDA.
//!
//! Bounds: f32 everywhere: logits and loss 1e-4, gradients 1e-3. With bf16 operands
//! (`bf16_matmuls` or `cublaslt`): logits 1e-2, loss 1e-3, gradients 3e-2. With the cuBLASLt
//! linears' reference GEMMs on the CPU the errors are 2.5e-3 (logits), 2.3e-6 (loss) and at most
//! 6.4e-3 (the first layer's `ln_2.bias` gradient) (`cargo test --release --test integration --
//! fixture::cublaslt --nocapture`): bf16 keeps 8 significant bits, 2⁻⁸ ≈ 3.9e-3 relative per
//! operand. The bounds leave about 4× for the GPU's other accumulation order and its TF32
//! attention matmuls.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::SafeTensors;

use crate::model::params::upload;
use crate::model::{Activation, Compute, Gpt, GptShape, HostParams, ParamSpec};

/// The fixture file: its bytes and its `config` metadata entry.
pub struct Fixture {
    bytes: Vec<u8>,
    cfg: serde_json::Value,
}

impl Fixture {
    /// # Errors
    /// The file cannot be read, is not safetensors, or has no `config` metadata.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| anyhow!("{} is not a safetensors file: {e}", path.display()))?;
        let raw = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("config"))
            .ok_or_else(|| {
                anyhow!(
                    "{} has no `config` metadata; regenerate it with scripts/make_fixture.py",
                    path.display()
                )
            })?;
        Ok(Self {
            cfg: serde_json::from_str(raw).context("the fixture's config metadata")?,
            bytes,
        })
    }

    fn raw(&self, name: &str) -> Result<Vec<u8>> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| anyhow!("fixture: {e}"))?;
        let v = st
            .tensor(name)
            .map_err(|_| anyhow!("the fixture has no tensor {name}"))?;
        Ok(v.data().to_vec())
    }

    /// A float32 tensor of the fixture, flattened.
    pub fn f32s(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self
            .raw(name)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// An int64 tensor of the fixture, flattened.
    pub fn i64s(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self
            .raw(name)?
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect())
    }

    /// A non-negative integer of the config (0 when absent).
    pub fn u(&self, k: &str) -> usize {
        self.cfg[k].as_u64().unwrap_or(0) as usize
    }

    /// A number of the config (NaN when absent).
    pub fn f(&self, k: &str) -> f64 {
        self.cfg[k].as_f64().unwrap_or(f64::NAN)
    }

    /// The fixture's model (exact GELU, no dropout).
    pub fn gpt(&self) -> Gpt {
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

    /// The parameters stored under `prefix` ("param." initial, "ema." after the steps), in
    /// `specs`' order.
    pub fn set(&self, prefix: &str, specs: &[ParamSpec]) -> Result<HostParams> {
        specs
            .iter()
            .map(|s| self.f32s(&format!("{prefix}{}", s.name)))
            .collect()
    }

    /// Rows `rows` of the token batch `name` ("input" or "target"), `[rows, block_size]`.
    pub fn tokens(
        &self,
        name: &str,
        rows: std::ops::Range<usize>,
        device: &Device,
    ) -> Result<Tensor<2, Int>> {
        let t = self.u("block_size");
        let all = self.i64s(name)?;
        let data = all
            .get(rows.start * t..rows.end * t)
            .ok_or_else(|| anyhow!("the fixture's {name} has fewer than {} rows", rows.end))?
            .to_vec();
        Ok(Tensor::from_data(
            TensorData::new(data, [rows.len(), t]),
            device,
        ))
    }
}

/// max|a − b| / max|b|.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    diff / scale.max(1e-30)
}

/// One compared quantity.
#[derive(Clone, Debug)]
pub struct FixtureCheck {
    pub what: String,
    pub rel_err: f64,
    pub bound: f64,
}

impl FixtureCheck {
    pub fn ok(&self) -> bool {
        self.rel_err <= self.bound
    }

    /// `FIXTURE what="…" rel_err=… bound=… ok|FAIL`.
    pub fn line(&self) -> String {
        format!(
            "FIXTURE what=\"{}\" rel_err={:.3e} bound={:.0e} {}",
            self.what,
            self.rel_err,
            self.bound,
            if self.ok() { "ok" } else { "FAIL" }
        )
    }
}

/// The bounds (logits, loss, gradients) for `compute`; see the module docs.
pub fn bounds(compute: &Compute) -> (f64, f64, f64) {
    if compute.bf16_matmuls || compute.cublaslt {
        (1e-2, 1e-3, 3e-2)
    } else {
        (1e-4, 1e-4, 1e-3)
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("cannot read a tensor back: {e:?}"))
}

/// The logits, the loss and every gradient at the fixture's weights on `device`, computed
/// with `compute`, against PyTorch's.
///
/// # Errors
/// A tensor missing from the fixture, or a shape that disagrees with the model's.
pub fn forward_and_gradients(
    fx: &Fixture,
    compute: Compute,
    device: &Device,
) -> Result<Vec<FixtureCheck>> {
    let mut gpt = fx.gpt();
    gpt.compute = compute;
    let (b_logits, b_loss, b_grad) = bounds(&compute);
    let params = upload(gpt.specs(), &fx.set("param.", gpt.specs())?, device)?;
    let b = fx.i64s("input")?.len() / fx.u("block_size").max(1);
    let input = fx.tokens("input", 0..b, device)?;
    let target = fx.tokens("target", 0..b, device)?;
    let mut out = Vec::new();
    let mut compare = |what: String, got: Vec<f32>, want: Vec<f32>, bound: f64| -> Result<()> {
        if got.len() != want.len() {
            bail!(
                "{what}: {} values, the fixture has {}",
                got.len(),
                want.len()
            );
        }
        out.push(FixtureCheck {
            rel_err: rel_err(&got, &want),
            what,
            bound,
        });
        Ok(())
    };
    let logits = host(gpt.forward(&params, input.clone(), 0.0))?;
    compare("logits".into(), logits, fx.f32s("logits")?, b_logits)?;
    let tracked: Vec<Tensor<1>> = params
        .iter()
        .map(|p| p.clone().autodiff().require_grad())
        .collect();
    let loss = gpt.loss(&tracked, input.autodiff(), target.autodiff(), 0.0);
    let grads = loss.backward();
    compare("loss".into(), host(loss.inner())?, fx.f32s("loss")?, b_loss)?;
    for (p, spec) in tracked.iter().zip(gpt.specs()) {
        let g = p
            .grad(&grads)
            .ok_or_else(|| anyhow!("{} has no gradient", spec.name))?;
        compare(
            format!("grad {}", spec.name),
            host(g)?,
            fx.f32s(&format!("grad.{}", spec.name))?,
            b_grad,
        )?;
    }
    Ok(out)
}

/// The command: prints one `FIXTURE` line per quantity and a summary.
///
/// # Errors
/// As [`forward_and_gradients`]; and when any quantity exceeds its bound.
pub fn run(
    path: &Path,
    device: &str,
    mut compute: Compute,
    matmul: crate::model::cublaslt::MatmulRoute,
) -> Result<()> {
    let fx = Fixture::load(path)?;
    crate::kernel_cache::configure(None)?;
    let chosen = crate::device::choose_device(crate::device::DeviceChoice::parse(device)?)?;
    // The route as a check needs it: cuBLASLt on CUDA (refused when it cannot load, since the
    // check would then not check it), the op's reference GEMMs on other devices.
    let wants_lt = matmul == crate::model::cublaslt::MatmulRoute::Cublaslt;
    if (wants_lt || compute.bf16_matmuls) && !crate::model::fused::check::has_bf16(&chosen.device) {
        bail!(
            "{} has no bf16, which --matmul cublaslt and --bf16-matmuls need",
            chosen.description
        );
    }
    let note = if wants_lt {
        let (on, note) = crate::model::cublaslt::route::resolve(matmul, chosen.backend);
        match (on, chosen.backend) {
            (true, _) => note.unwrap_or_default(),
            (false, "cuda") => bail!(
                "--matmul cublaslt: {}",
                note.unwrap_or_else(|| "cuBLASLt is unavailable".into())
            ),
            (false, b) => format!(
                "--matmul cublaslt on {b}: the op's reference GEMMs (cuBLASLt runs only on CUDA)"
            ),
        }
    } else {
        String::new()
    };
    compute.cublaslt = wants_lt;
    eprintln!(
        "[lmtrain] check-fixture on {}: {}",
        chosen.description,
        compute.describe()
    );
    if !note.is_empty() {
        eprintln!("[lmtrain] {note}");
    }
    let checks = forward_and_gradients(&fx, compute, &chosen.device)?;
    for c in &checks {
        println!("{}", c.line());
    }
    let worst = checks.iter().map(|c| c.rel_err).fold(0.0, f64::max);
    let failed = checks.iter().filter(|c| !c.ok()).count();
    println!(
        "FIXTURE_SUMMARY checks={} failed={failed} worst_rel_err={worst:.3e}",
        checks.len()
    );
    if failed > 0 {
        bail!(
            "{failed} of {} quantities differ from PyTorch beyond their bound (lines marked FAIL)",
            checks.len()
        );
    }
    Ok(())
}
