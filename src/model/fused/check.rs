//! Each fused op against the same function composed of burn's plain tensor ops, on random
//! inputs, on any device: the outputs and every input gradient, with their relative errors.
//! The unit tests run it on the CPU with tight bounds; `lmtrain check-ops` runs it on the GPU.

use burn::tensor::activation::softmax;
use burn::tensor::module::layer_norm as plain_layer_norm;
use burn::tensor::{Bool, Device, Distribution, FloatDType, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};

/// The sizes of the random inputs.
#[derive(Clone, Copy, Debug)]
pub struct CheckShapes {
    pub batch: usize,
    pub heads: usize,
    /// Query positions (and keys, for the causal mask).
    pub time: usize,
    pub head_dim: usize,
    /// Rows of the LayerNorm, bias and cross-entropy inputs.
    pub rows: usize,
    pub width: usize,
    pub vocab: usize,
}

impl CheckShapes {
    /// Odd sizes (nothing a multiple of a tile), small enough for a debug-speed CPU test.
    pub fn small() -> Self {
        Self {
            batch: 2,
            heads: 3,
            time: 17,
            head_dim: 8,
            // Enough rows for the two-stage column sums of the gradients (8 blocks of 37).
            rows: 296,
            width: 48,
            vocab: 131,
        }
    }

    /// GPT-2-small-like sizes, for the GPU (tile-sized and larger, so real kernels run).
    pub fn gpu() -> Self {
        Self {
            batch: 4,
            heads: 12,
            time: 256,
            head_dim: 64,
            rows: 2048,
            width: 768,
            vocab: 50304,
        }
    }
}

/// How far one tensor of a fused op is from the plain-op reference:
/// `max|fused − plain| / max|plain|` (the largest error in units of the tensor's scale).
#[derive(Clone, Debug)]
pub struct Deviation {
    pub tensor: &'static str,
    pub max_rel: f64,
}

/// One op's comparison: its output and each input gradient.
#[derive(Clone, Debug)]
pub struct OpCheck {
    pub op: String,
    /// Whether the fused side ran its matmuls in bf16 (its bound is bf16's, not f32's).
    pub bf16: bool,
    pub deviations: Vec<Deviation>,
}

impl OpCheck {
    pub fn worst(&self) -> f64 {
        self.deviations
            .iter()
            .map(|d| d.max_rel)
            .fold(0.0, f64::max)
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

fn deviation<const D: usize>(
    tensor: &'static str,
    fused: Tensor<D>,
    plain: Tensor<D>,
) -> Deviation {
    let (a, b) = (values(fused), values(plain));
    let scale = b.iter().fold(0.0f64, |m, x| m.max((*x as f64).abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    // A NaN anywhere (or nothing read back) must fail the check, not vanish in `max`.
    let nan = a.len() != b.len() || a.is_empty() || a.iter().chain(&b).any(|x| !x.is_finite());
    Deviation {
        tensor,
        max_rel: if nan {
            f64::INFINITY
        } else {
            worst / scale.max(1e-30)
        },
    }
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Gradients of `Σ out ∘ weights` with respect to `inputs`, and `out` itself.
fn output_and_grads<const D: usize, const N: usize>(
    inputs: [Tensor<D>; N],
    run: impl FnOnce([Tensor<D>; N]) -> Tensor<D>,
    weights: &Tensor<D>,
) -> (Tensor<D>, [Tensor<D>; N]) {
    let tracked = inputs.map(|t| t.autodiff().require_grad());
    let out = run(tracked.clone());
    let grads = (out.clone() * weights.clone().autodiff()).sum().backward();
    let g = tracked.map(|t| t.grad(&grads).expect("every input gets a gradient"));
    (out.inner(), g)
}

fn plain_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<4, Bool>) -> Tensor<4> {
    let hd = q.dims()[3];
    let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (hd as f64).sqrt());
    softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3).matmul(v)
}

/// The fused attention entry points ([`super::masked_attention`], [`super::causal_attention`]).
type AttentionOp = fn(Tensor<4>, Tensor<4>, Tensor<4>, Tensor<4, Bool>, bool) -> Tensor<4>;

/// `op` (named `name`) against plain attention under a causal mask offset by `start` (queries at
/// positions start.., as in a KV-cache prefill) when `start > 0`.
fn check_attention(
    s: CheckShapes,
    start: usize,
    bf16: bool,
    (name, op): (&str, AttentionOp),
    device: &Device,
) -> OpCheck {
    let (b, h, t, d) = (s.batch, s.heads, s.time, s.head_dim);
    let total = start + t;
    let q = random([b, h, t, d], device);
    let k = random([b, h, total, d], device);
    let v = random([b, h, total, d], device);
    let mask = Tensor::<2, Bool>::tril_mask([t, total], start as i64, device)
        .unsqueeze::<4>()
        .expand([b, h, t, total]);
    let w = random([b, h, t, d], device);
    let (m1, m2) = (mask.clone(), mask);
    let (fused, [fq, fk, fv]) = output_and_grads(
        [q.clone(), k.clone(), v.clone()],
        |[q, k, v]| op(q, k, v, m1.autodiff(), bf16),
        &w,
    );
    let (plain, [pq, pk, pv]) = output_and_grads(
        [q, k, v],
        |[q, k, v]| plain_attention(q, k, v, m2.autodiff()),
        &w,
    );
    OpCheck {
        op: format!(
            "{name} [{b},{h},{t},{d}] keys {total}{}",
            if bf16 { " bf16" } else { "" }
        ),
        bf16,
        deviations: vec![
            deviation("out", fused, plain),
            deviation("dq", fq, pq),
            deviation("dk", fk, pk),
            deviation("dv", fv, pv),
        ],
    }
}

fn check_layer_norm(s: CheckShapes, device: &Device) -> OpCheck {
    let (r, c) = (s.rows, s.width);
    // Rows with an offset and a spread, as a residual stream has.
    let x = random([1, r, c], device) * 3.0 + 0.5;
    let gamma = random([1, 1, c], device) * 0.2 + 1.0;
    let beta = random([1, 1, c], device) * 0.1;
    let w = random([1, r, c], device);
    let vector = |t: Tensor<3>| t.reshape([c]);
    let (fused, fg) = output_and_grads(
        [x.clone(), gamma.clone(), beta.clone()],
        |[x, g, b]| super::layer_norm(x, vector(g), vector(b), 1e-5),
        &w,
    );
    let (plain, pg) = output_and_grads(
        [x, gamma, beta],
        |[x, g, b]| plain_layer_norm(x, vector(g), Some(vector(b)), 1e-5),
        &w,
    );
    let [fx, fgm, fb] = fg;
    let [px, pgm, pb] = pg;
    OpCheck {
        op: format!("layer_norm [{r},{c}]"),
        bf16: false,
        deviations: vec![
            deviation("out", fused, plain),
            deviation("dx", fx, px),
            deviation("dgamma", fgm, pgm),
            deviation("dbeta", fb, pb),
        ],
    }
}

fn check_bias(s: CheckShapes, device: &Device) -> OpCheck {
    let (r, c) = (s.rows, s.width);
    let x = random([1, r, c], device);
    let bias = random([1, 1, c], device);
    let w = random([1, r, c], device);
    let (fused, [fx, fb]) = output_and_grads(
        [x.clone(), bias.clone()],
        |[x, b]| super::add_bias(x, b),
        &w,
    );
    let (plain, [px, pb]) = output_and_grads([x, bias], |[x, b]| x + b, &w);
    OpCheck {
        op: format!("bias [{r},{c}]"),
        bf16: false,
        deviations: vec![
            deviation("out", fused, plain),
            deviation("dx", fx, px),
            deviation("dbias", fb, pb),
        ],
    }
}

/// The bf16 linear ([`crate::model::cublaslt::linear_bf16`]) against burn's f32 matmul and add:
/// with the bias (`w` `[in, out]`, as the qkv linear) and without it (`w` `[out, in]`
/// transposed, as the tied LM head). Inputs and output weights are bf16-representable, so the
/// op's casts round nothing and the two sides differ by accumulation order (and TF32 on cubecl):
/// the check is held to the f32 bound, not bf16's, so that a wrong gradient cannot hide.
fn check_linear(s: CheckShapes, head: bool, device: &Device) -> OpCheck {
    let exact = |t: Tensor<2>| t.cast(FloatDType::BF16).cast(FloatDType::F32);
    let (r, c) = (s.rows, s.width);
    let n = if head { s.vocab } else { 3 * c };
    let x = exact(random([r, c], device));
    let w = exact(random(if head { [n, c] } else { [c, n] }, device));
    let b = exact(random([1, n], device));
    let weights = exact(random([r, n], device));
    let ours = |[x, w, b]: [Tensor<2>; 3]| {
        let bias = (!head).then(|| b.clone().reshape([n]));
        // Without a bias, b still takes part (times zero) so that every input gets a gradient.
        let y = crate::model::cublaslt::linear_bf16(x, w, bias, head);
        if head {
            y + b * 0.0
        } else {
            y
        }
    };
    let plain = |[x, w, b]: [Tensor<2>; 3]| {
        if head {
            x.matmul(w.transpose()) + b * 0.0
        } else {
            x.matmul(w) + b
        }
    };
    let (fused, [fx, fw, fb]) = output_and_grads([x.clone(), w.clone(), b.clone()], ours, &weights);
    let (plain, [px, pw, pb]) = output_and_grads([x, w, b], plain, &weights);
    let mut deviations = vec![
        deviation("out", fused, plain),
        deviation("dx", fx, px),
        deviation("dw", fw, pw),
    ];
    if !head {
        deviations.push(deviation("dbias", fb, pb));
    }
    OpCheck {
        op: if head {
            format!("linear bf16, LM head [{r},{c}]x[{n},{c}]^T")
        } else {
            format!("linear bf16 [{r},{c}]x[{c},{n}]+b")
        },
        bf16: false,
        deviations,
    }
}

/// The bf16 linear's GEMM methods ([`crate::model::cublaslt::LtOps`]) called directly with f32
/// operands, for devices without bf16 (wgpu): under burn's fusion each is an opaque custom
/// operation, so this checks that plumbing (output shapes, the weight and bias gradients'
/// pair) on the cubecl route, against burn's plain matmul and sum. Forward with bias and the
/// head's transposed weight, the input gradient, the weight and bias gradients.
fn check_lt_gemms(s: CheckShapes, device: &Device) -> OpCheck {
    use crate::model::cublaslt::ops::{lt_call, LtCall, LtOps};
    let (r, c) = (s.rows, s.width);
    let n = 3 * c;
    let (x, w, b, dy) = (
        random([r, c], device),
        random([c, n], device),
        random([n], device),
        random([r, n], device),
    );
    let wte = random([s.vocab, c], device);
    let y = lt_call(
        LtCall::Forward { w_out_in: false },
        x.clone(),
        w.clone(),
        Some(b.clone()),
    );
    let logits = lt_call(
        LtCall::Forward { w_out_in: true },
        x.clone(),
        wte.clone(),
        None,
    );
    let dx = lt_call(
        LtCall::GradInput { w_out_in: false },
        dy.clone(),
        w.clone(),
        None,
    );
    let (dw, db) = <burn::backend::Dispatch as LtOps>::lt_grad_weight_bias(
        x.clone().into_dispatch(),
        dy.clone().into_dispatch(),
        false,
    );
    let (dw, db) = (
        Tensor::<2>::from_dispatch(dw),
        Tensor::<1>::from_dispatch(db),
    );
    OpCheck {
        op: format!("linear GEMM ops, f32 operands [{r},{c}]x[{c},{n}]+b"),
        bf16: false,
        deviations: vec![
            deviation("out", y, x.clone().matmul(w.clone()) + b.unsqueeze::<2>()),
            deviation("head", logits, x.clone().matmul(wte.transpose())),
            deviation("dx", dx, dy.clone().matmul(w.transpose())),
            deviation("dw", dw, x.transpose().matmul(dy.clone())),
            deviation("dbias", db, dy.sum_dim(0).reshape([n])),
        ],
    }
}

fn check_cross_entropy(s: CheckShapes, seed: u64, device: &Device) -> OpCheck {
    let (r, v) = (s.rows, s.vocab);
    let logits = random([r, v], device) * 2.0;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<i64> = (0..r).map(|_| rng.random_range(0..v as i64)).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(ids, [r]), device);
    let (t1, t2) = (targets.clone(), targets);
    let run_fused = |[l]: [Tensor<2>; 1]| super::cross_entropy(l, t1.autodiff()).reshape([1, 1]);
    // The model's own loss when the fused op is off.
    let run_plain =
        |[l]: [Tensor<2>; 1]| crate::model::gpt::cross_entropy(l, t2.autodiff()).reshape([1, 1]);
    let w = Tensor::<2>::ones([1, 1], device) * 0.7;
    let (fused, [fl]) = output_and_grads([logits.clone()], run_fused, &w);
    let (plain, [pl]) = output_and_grads([logits], run_plain, &w);
    OpCheck {
        op: format!("cross_entropy [{r},{v}]"),
        bf16: false,
        deviations: vec![
            deviation("loss", fused, plain),
            deviation("dlogits", fl, pl),
        ],
    }
}

/// Every fused op against its plain composition on `device`: attention causal and with a
/// KV-cache-style offset, in f32 and (where the device has bf16) with bf16 matmuls; LayerNorm;
/// bias; cross-entropy; causal attention by the backend's own forward kernel.
pub fn check_all(shapes: CheckShapes, seed: u64, device: &Device) -> Vec<OpCheck> {
    device.seed(seed);
    let masked: (&str, AttentionOp) = ("attention", super::masked_attention);
    let flash: (&str, AttentionOp) = ("flash attention", super::causal_attention);
    let mut checks = vec![
        check_attention(shapes, 0, false, masked, device),
        check_attention(shapes, shapes.time / 2, false, masked, device),
    ];
    if has_bf16(device) {
        checks.push(check_attention(shapes, 0, true, masked, device));
    }
    checks.push(check_layer_norm(shapes, device));
    checks.push(check_bias(shapes, device));
    checks.push(check_cross_entropy(shapes, seed, device));
    checks.push(check_attention(shapes, 0, false, flash, device));
    if has_bf16(device) {
        checks.push(check_linear(shapes, false, device));
        checks.push(check_linear(shapes, true, device));
    } else {
        checks.push(check_lt_gemms(shapes, device));
    }
    checks
}

/// Whether `device` computes in bf16 (WGSL, for one, has no bf16 type).
pub fn has_bf16(device: &Device) -> bool {
    device.supports_dtype(burn::tensor::DType::BF16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GEMM-op check that wgpu runs (it has no bf16), here on the CPU's reference bodies:
    /// every output agrees with burn's plain ops to f32 rounding.
    #[test]
    fn lt_gemm_ops_match_plain_ops() {
        let c = check_lt_gemms(CheckShapes::small(), &Device::flex());
        assert_eq!(c.deviations.len(), 5);
        assert!(c.worst() < 1e-5, "{c:?}");
    }
}
