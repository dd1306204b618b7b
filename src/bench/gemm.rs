//! `lmtrain gemm-bench`: the GEMMs of one training step's linears, timed one by one on a device
//! (issue 18's table: which matmul route to take on the GPU).
//!
//! For every linear of the GPT (per layer: qkv, proj, fc, fc_proj; once: the tied LM head) the
//! three GEMMs of a training step: the forward product, the input gradient dX = dY·Wᵀ and the
//! weight gradient dW = Xᵀ·dY, with the operands stored as the model stores them (weights
//! `[in, out]`, the LM head's `wte` `[vocab, width]` used transposed). Each implementation runs
//! every GEMM `warmup` times, then `reps` times with a device sync after each, and prints
//!
//! `GEMM impl=<burn_f32|burn_bf16|cublaslt|lt_reference> gemm=<linear>.<fwd|dx|dw> m= n= k=
//!  trans_a= trans_b= count= median_ms= tflops= rel_err=`
//!
//! TFLOP/s counts 2·m·n·k per product; bf16 times include the casts of both operands to bf16 and
//! of the product back to f32, as the model pays them. `cublaslt` is the model's cuBLASLt op
//! (`model.matmul = "cublaslt"`) on the stored operands, with the casts to bf16 and, where the
//! model has them, the bias add (forward) and the bias gradient (the linears' dW) in the GEMM;
//! its output is f32, so there is no cast back. Off CUDA the same op runs its reference GEMMs
//! and is labelled `lt_reference`. A `cublaslt` line ends in `fallback=gemm` when some
//! repetition fell back to the reference GEMM (its time is then not cuBLASLt's) and in
//! `fallback=epilogue` when cuBLASLt ran without the line's epilogue. `rel_err` is max|C − C_ref| / max|C_ref|
//! over `samples` × `samples` entries of C (sampled rows × sampled columns), C_ref computed on the
//! host in f64 from the operands. `count` is how many times one training step runs this GEMM.
//! `scripts/gemm_bench.sh` runs this beside PyTorch (`scripts/gemm_bench_torch.py`).

use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gpt_step::BenchShape;
use crate::device::{choose_device, DeviceChoice};

/// One GEMM: row-major C `[m, n]` = op(A)·op(B), A stored `[m, k]` (`[k, m]` when `trans_a`),
/// B stored `[k, n]` (`[n, k]` when `trans_b`).
#[derive(Clone, Debug, PartialEq)]
pub struct GemmSpec {
    pub name: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// How many times one training step runs it (the per-layer GEMMs once per layer).
    pub count: usize,
}

impl GemmSpec {
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// A model shape: layers, width, tokens per step (batch × sequence), vocabulary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmShape {
    pub layers: usize,
    pub width: usize,
    pub tokens: usize,
    pub vocab: usize,
}

impl From<BenchShape> for GemmShape {
    fn from(s: BenchShape) -> Self {
        Self {
            layers: s.layers,
            width: s.d_model,
            tokens: s.batch * s.seq,
            vocab: s.vocab,
        }
    }
}

impl GemmShape {
    /// `a` and `b`: the bench's configs A and B ([`BenchShape::A`], [`BenchShape::B`], the shapes
    /// of `../shared/bench/torch_gpt_bench.py`); `tiny`: for tests.
    pub fn named(name: &str) -> Result<Self> {
        Ok(match name {
            "a" => BenchShape::A.into(),
            "b" => BenchShape::B.into(),
            "tiny" => Self {
                layers: 2,
                width: 16,
                tokens: 24,
                vocab: 40,
            },
            other => bail!("--shape {other:?}: use a, b or tiny"),
        })
    }

    /// The step's GEMMs, in the order of the model's linears.
    pub fn gemms(&self) -> Vec<GemmSpec> {
        let (d, t) = (self.width, self.tokens);
        let mut out = Vec::new();
        let mut linear = |name: &str, i: usize, o: usize, count: usize| {
            let g = |pass: &str, m, n, k, trans_a, trans_b| GemmSpec {
                name: format!("{name}.{pass}"),
                m,
                n,
                k,
                trans_a,
                trans_b,
                count,
            };
            // Y [t, o] = X [t, i] · W [i, o]; dX = dY · Wᵀ; dW = Xᵀ · dY.
            out.push(g("fwd", t, o, i, false, false));
            out.push(g("dx", t, i, o, false, true));
            out.push(g("dw", i, o, t, true, false));
        };
        linear("qkv", d, 3 * d, self.layers);
        linear("proj", d, d, self.layers);
        linear("fc", d, 4 * d, self.layers);
        linear("fc_proj", 4 * d, d, self.layers);
        // The tied head: logits [t, V] = X · wteᵀ (wte [V, d]); dX = dlogits · wte;
        // dwte [V, d] = dlogitsᵀ · X.
        let v = self.vocab;
        out.push(GemmSpec {
            name: "lm_head.fwd".into(),
            m: t,
            n: v,
            k: d,
            trans_a: false,
            trans_b: true,
            count: 1,
        });
        out.push(GemmSpec {
            name: "lm_head.dx".into(),
            m: t,
            n: d,
            k: v,
            trans_a: false,
            trans_b: false,
            count: 1,
        });
        out.push(GemmSpec {
            name: "lm_head.dw".into(),
            m: v,
            n: d,
            k: t,
            trans_a: true,
            trans_b: false,
            count: 1,
        });
        out
    }
}

pub struct GemmBenchOptions {
    pub device: String,
    pub shape: String,
    pub reps: usize,
    pub warmup: usize,
    pub samples: usize,
    pub seed: u64,
    /// Only GEMMs whose name contains this.
    pub only: Option<String>,
}

/// One measured GEMM.
#[derive(Clone, Debug)]
pub struct GemmResult {
    pub spec: GemmSpec,
    pub implementation: &'static str,
    pub median_ms: f64,
    pub rel_err: f64,
    /// For `cublaslt`: "gemm" when some repetition fell back to the reference GEMM (so the time
    /// is not cuBLASLt's), "epilogue" when cuBLASLt ran without its epilogue.
    pub fallback: Option<&'static str>,
}

impl GemmResult {
    pub fn line(&self) -> String {
        let s = &self.spec;
        format!(
            "GEMM impl={} gemm={} m={} n={} k={} trans_a={} trans_b={} count={} median_ms={:.4} tflops={:.2} rel_err={:.3e}{}",
            self.implementation,
            s.name,
            s.m,
            s.n,
            s.k,
            u8::from(s.trans_a),
            u8::from(s.trans_b),
            s.count,
            self.median_ms,
            s.flops() / (self.median_ms * 1e-3) / 1e12,
            self.rel_err,
            self.fallback
                .map(|f| format!(" fallback={f}"))
                .unwrap_or_default()
        )
    }
}

fn host(t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read a tensor back: {e:?}"))
}

/// The implementations the table compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    BurnF32,
    BurnBf16,
    /// The cuBLASLt op ([`crate::model::cublaslt::LtOps`]); `on_cuda` picks the label.
    Lt {
        on_cuda: bool,
    },
}

impl Impl {
    pub fn label(self) -> &'static str {
        match self {
            Impl::BurnF32 => "burn_f32",
            Impl::BurnBf16 => "burn_bf16",
            Impl::Lt { on_cuda: true } => "cublaslt",
            Impl::Lt { on_cuda: false } => "lt_reference",
        }
    }
}

/// `spec`'s product through the cuBLASLt op, from the stored operands as the model passes them
/// (the linears' weights `[in, out]`, the head's `wte` `[vocab, width]`), with the model's
/// epilogue: the forward adds a zero bias (the linears have one; the head not), the linears'
/// dW also sums the bias gradient.
fn lt_product(spec: &GemmSpec, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    use crate::model::cublaslt::ops::{lt_call, LtCall};
    let head = spec.name.starts_with("lm_head");
    let pass = spec.name.rsplit('.').next().unwrap_or("");
    let (a, b) = (a.cast(FloatDType::BF16), b.cast(FloatDType::BF16));
    match pass {
        "fwd" => {
            let bias = (!head).then(|| Tensor::<1>::zeros([spec.n], &a.device()));
            lt_call(
                LtCall::Forward {
                    w_out_in: spec.trans_b,
                },
                a,
                b,
                bias,
            )
        }
        // dX = dY·op(W)ᵀ: W is read transposed exactly when it is stored [in, out].
        "dx" => lt_call(
            LtCall::GradInput {
                w_out_in: !spec.trans_b,
            },
            a,
            b,
            None,
        ),
        // Aᵀ·B either way; the head's is dYᵀ·X (its weight stored [out, in]).
        _ if head => lt_call(
            LtCall::GradWeight {
                w_out_in: true,
                with_bias: false,
            },
            b,
            a,
            None,
        ),
        _ => lt_call(
            LtCall::GradWeight {
                w_out_in: false,
                with_bias: true,
            },
            a,
            b,
            None,
        ),
    }
}

/// Times one GEMM with one implementation and measures its error on sampled entries.
fn measure(
    spec: &GemmSpec,
    imp: Impl,
    o: &GemmBenchOptions,
    device: &Device,
) -> Result<GemmResult> {
    let (a_shape, b_shape) = (
        if spec.trans_a {
            [spec.k, spec.m]
        } else {
            [spec.m, spec.k]
        },
        if spec.trans_b {
            [spec.n, spec.k]
        } else {
            [spec.k, spec.n]
        },
    );
    let a_buf = Tensor::<2>::random(a_shape, Distribution::Normal(0.0, 1.0), device);
    let b_buf = Tensor::<2>::random(b_shape, Distribution::Normal(0.0, 1.0), device);
    let run = || {
        if let Impl::Lt { .. } = imp {
            return lt_product(spec, a_buf.clone(), b_buf.clone());
        }
        let a = if spec.trans_a {
            a_buf.clone().transpose()
        } else {
            a_buf.clone()
        };
        let b = if spec.trans_b {
            b_buf.clone().transpose()
        } else {
            b_buf.clone()
        };
        if imp == Impl::BurnBf16 {
            a.cast(FloatDType::BF16)
                .matmul(b.cast(FloatDType::BF16))
                .cast(FloatDType::F32)
        } else {
            a.matmul(b)
        }
    };
    let fallbacks_before = crate::model::cublaslt::fallback_counts();
    let sync = || {
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
    };
    for _ in 0..o.warmup {
        drop(run());
        sync()?;
    }
    let mut times = Vec::with_capacity(o.reps);
    let mut last = None;
    for _ in 0..o.reps {
        sync()?;
        let t = Instant::now();
        let c = run();
        sync()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(c);
    }
    let c = last.unwrap_or_else(run);

    // The error on sampled rows × sampled columns, against f64 on the host.
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ spec.m as u64 ^ ((spec.n as u64) << 20));
    let rows: Vec<usize> = (0..o.samples.min(spec.m))
        .map(|_| rng.random_range(0..spec.m))
        .collect();
    let cols: Vec<usize> = (0..o.samples.min(spec.n))
        .map(|_| rng.random_range(0..spec.n))
        .collect();
    // Only the sampled rows of op(A) and columns of op(B) leave the device (the LM head's
    // operands are gigabytes).
    let index = |v: &[usize]| {
        Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(
                v.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [v.len()],
            ),
            device,
        )
    };
    let (s_r, s_c) = (rows.len(), cols.len());
    // a_rows[r·K + l] = op(A)[rows[r], l]; b_cols[q·K + l] = op(B)[l, cols[q]].
    let a_rows = host(if spec.trans_a {
        a_buf.select(1, index(&rows)).transpose()
    } else {
        a_buf.select(0, index(&rows))
    })?;
    let b_cols = host(if spec.trans_b {
        b_buf.select(0, index(&cols))
    } else {
        b_buf.select(1, index(&cols)).transpose()
    })?;
    let got = host(c.select(0, index(&rows)).select(1, index(&cols)))?;
    let (mut worst, mut scale) = (0.0f64, 0.0f64);
    for r in 0..s_r {
        for q in 0..s_c {
            let reference: f64 = (0..spec.k)
                .map(|l| a_rows[r * spec.k + l] as f64 * b_cols[q * spec.k + l] as f64)
                .sum();
            worst = worst.max((got[r * s_c + q] as f64 - reference).abs());
            scale = scale.max(reference.abs());
        }
    }
    Ok(GemmResult {
        spec: spec.clone(),
        implementation: imp.label(),
        median_ms: crate::eval::text_metrics::median(&times)
            .ok_or_else(|| anyhow::anyhow!("no valid timing for {}", spec.name))?,
        rel_err: worst / scale.max(f64::MIN_POSITIVE),
        fallback: {
            let after = crate::model::cublaslt::fallback_counts();
            if after.0 > fallbacks_before.0 {
                Some("gemm")
            } else if after.1 > fallbacks_before.1 {
                Some("epilogue")
            } else {
                None
            }
        },
    })
}

/// Runs the table on the chosen device, printing one `GEMM` line per GEMM and implementation
/// (bf16 only where the device has it) and a `GEMM_STEP` line per implementation: the step's
/// total GEMM time, each GEMM weighted by its count.
pub fn run(o: &GemmBenchOptions) -> Result<Vec<GemmResult>> {
    if o.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let shape = GemmShape::named(&o.shape)?;
    let all = shape.gemms();
    let gemms: Vec<GemmSpec> = all
        .iter()
        .filter(|g| o.only.as_ref().is_none_or(|s| g.name.contains(s.as_str())))
        .cloned()
        .collect();
    if gemms.is_empty() {
        let names: Vec<&str> = all.iter().map(|g| g.name.as_str()).collect();
        bail!(
            "--only {}: matches none of the GEMMs ({}); give part of a name, e.g. lm_head or .dw",
            o.only.as_deref().unwrap_or(""),
            names.join(", ")
        );
    }
    crate::kernel_cache::configure(None)?;
    let chosen = choose_device(DeviceChoice::parse(&o.device)?)?;
    let step_tflop: f64 = gemms
        .iter()
        .map(|g| g.flops() * g.count as f64)
        .sum::<f64>()
        / 1e12;
    eprintln!(
        "[lmtrain] gemm-bench on {}: shape {} ({} layers, width {}, {} tokens, vocabulary {}), {} GEMMs, {step_tflop:.3} TFLOP per step",
        chosen.description, o.shape, shape.layers, shape.width, shape.tokens, shape.vocab, gemms.len()
    );
    if !chosen.is_gpu && step_tflop > 0.1 {
        eprintln!(
            "[lmtrain] warning: shape {} on the CPU runs each GEMM {} times per implementation: hours at ~0.1 TFLOP/s (--shape tiny checks the command)",
            o.shape,
            o.warmup + o.reps
        );
    }
    let mut impls = vec![Impl::BurnF32];
    if crate::model::fused::check::has_bf16(&chosen.device) {
        impls.push(Impl::BurnBf16);
        let (on_cuda, note) = crate::model::cublaslt::route::resolve(
            crate::model::cublaslt::MatmulRoute::Cublaslt,
            chosen.backend,
        );
        if chosen.backend == "cuda" && !on_cuda {
            println!("SKIP impl=cublaslt: {}", note.unwrap_or_default());
        } else {
            impls.push(Impl::Lt { on_cuda });
        }
    } else {
        println!("SKIP impl=burn_bf16: this device has no bf16");
        println!("SKIP impl=cublaslt: this device has no bf16");
    }
    let mut out = Vec::new();
    for imp in impls {
        let mut step_ms = 0.0;
        let mut step_flops = 0.0;
        for g in &gemms {
            let r = measure(g, imp, o, &chosen.device)?;
            println!("{}", r.line());
            step_ms += r.median_ms * g.count as f64;
            step_flops += g.flops() * g.count as f64;
            out.push(r);
        }
        println!(
            "GEMM_STEP impl={} shape={} gemms={} step_ms={:.3} tflops={:.2}",
            imp.label(),
            o.shape,
            gemms.len(),
            step_ms,
            step_flops / (step_ms * 1e-3) / 1e12
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B's step: 4 linears × 3 GEMMs × 12 layers + the head's 3; 6·N·T FLOPs of weight
    /// products per token as the usual estimate counts them (2 forward + 4 backward).
    #[test]
    fn the_step_has_the_models_gemms_and_flops() {
        let s = GemmShape::named("b").unwrap();
        let g = s.gemms();
        assert_eq!(g.len(), 15);
        let total: f64 = g.iter().map(|g| g.flops() * g.count as f64).sum();
        let d = s.width as f64;
        let params = s.layers as f64 * 12.0 * d * d + s.vocab as f64 * d;
        assert!((total - 6.0 * params * s.tokens as f64).abs() < 1e-6 * total);
    }

    /// On the CPU: the products are right (f32 to rounding) and the lines parse.
    #[test]
    fn tiny_table_on_the_cpu() {
        let o = GemmBenchOptions {
            device: "cpu".into(),
            shape: "tiny".into(),
            reps: 2,
            warmup: 1,
            samples: 8,
            seed: 1,
            only: None,
        };
        let r = run(&o).unwrap();
        assert!(r.len() >= 15);
        // The op's reference GEMMs run here too, through the same operand mapping as cuBLASLt.
        assert_eq!(
            r.iter()
                .filter(|x| x.implementation == "lt_reference")
                .count(),
            15
        );
        for x in &r {
            let bound = if x.implementation != "burn_f32" {
                2e-2
            } else {
                1e-5
            };
            assert!(x.rel_err < bound, "{}", x.line());
            assert!(x.median_ms > 0.0 && x.line().contains(&format!("gemm={}", x.spec.name)));
        }
    }
}
