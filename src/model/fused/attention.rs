//! Causal self-attention whose backward pass recomputes the probabilities.
//!
//! Under burn's autodiff, attention composed of plain ops keeps every intermediate of the
//! softmax (scores, shifted scores, exponentials, probabilities: several `[batch, heads, T, T]`
//! tensors per layer) until the backward pass, and differentiates each op separately. This
//! version keeps only the output and the per-row log-sum-exp (`[batch, heads, T, 1]`), as
//! FlashAttention does, and writes the backward pass in closed form:
//! `dS = P ∘ (dP − rowsum(dO ∘ O))`, so it costs one extra QKᵀ product and far fewer passes over
//! score-sized tensors.

use burn::backend::ops::AttentionModuleOptions;
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::FloatDType;

/// What the backward pass needs: the inputs, the output and the log-sum-exp of each score row.
#[derive(Clone, Debug)]
pub struct Saved<B: Backend> {
    pub q: FloatTensor<B>,
    pub k: FloatTensor<B>,
    pub v: FloatTensor<B>,
    pub mask: BoolTensor<B>,
    pub out: FloatTensor<B>,
    /// `None` when the forward pass was the backend's own attention kernel, which does not
    /// return it: the backward pass then normalises the recomputed scores itself.
    pub lse: Option<FloatTensor<B>>,
    pub bf16: bool,
}

/// `a @ b`, with bf16 operands and an f32 product when `bf16` is set (as the model's other
/// matmuls under `Compute::bf16_matmuls`).
fn matmul<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>, bf16: bool) -> FloatTensor<B> {
    if bf16 {
        let product = B::float_matmul(
            B::float_cast(a, FloatDType::BF16),
            B::float_cast(b, FloatDType::BF16),
        );
        B::float_cast(product, FloatDType::F32)
    } else {
        B::float_matmul(a, b)
    }
}

fn transpose<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_swap_dims(t, 2, 3)
}

/// `QKᵀ/√head_dim` with masked positions at −∞.
fn scores<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    mask: BoolTensor<B>,
    bf16: bool,
) -> FloatTensor<B> {
    let head_dim = q.shape()[3];
    let scaled = B::float_mul_scalar(
        matmul::<B>(q, transpose::<B>(k), bf16),
        (1.0 / (head_dim as f64).sqrt()).into(),
    );
    B::float_mask_fill(scaled, mask, f32::NEG_INFINITY.into())
}

/// `softmax(QKᵀ/√d, masked) · V` for `q` `[batch, heads, T, head_dim]`, `k, v` `[batch, heads,
/// S, head_dim]` (S ≥ T with a KV cache) and `mask` `[batch, heads, T, S]` (true = hidden; every
/// row must keep at least one key), and the log-sum-exp of each score row (`[batch, heads, T, 1]`).
pub fn forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    mask: BoolTensor<B>,
    bf16: bool,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let s = scores::<B>(q, k, mask, bf16);
    let max = B::float_max_dim(s.clone(), 3);
    let exp = B::float_exp(B::float_sub(s, max.clone()));
    let sum = B::float_sum_dim(exp.clone(), 3);
    let probs = B::float_div(exp, sum.clone());
    let out = matmul::<B>(probs, v, bf16);
    let lse = B::float_add(max, B::float_log(sum));
    (out, lse)
}

/// Causal `softmax(QKᵀ/√d) · V` (queries and keys aligned, T = S) by the backend's own attention
/// op: on cubecl, burn autotunes cubek's flash-attention kernels (the score matrix never reaches
/// memory) against its plain fallback; burn flex has its own. With `bf16` the operands are cast
/// to bf16 and the output back to f32.
pub fn flash_forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    bf16: bool,
) -> FloatTensor<B> {
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    if bf16 {
        let cast = |t| B::float_cast(t, FloatDType::BF16);
        let out = B::attention(cast(q), cast(k), cast(v), None, None, options);
        B::float_cast(out, FloatDType::F32)
    } else {
        B::attention(q, k, v, None, None, options)
    }
}

/// Gradients `(dQ, dK, dV)` for the output gradient `dout`.
pub fn backward<B: Backend>(saved: Saved<B>, dout: FloatTensor<B>) -> [FloatTensor<B>; 3] {
    let Saved {
        q,
        k,
        v,
        mask,
        out,
        lse,
        bf16,
    } = saved;
    let head_dim = q.shape()[3];
    let scale = 1.0 / (head_dim as f64).sqrt();
    // Masked scores are −∞, so their recomputed probabilities are exactly 0.
    let s = scores::<B>(q.clone(), k.clone(), mask, bf16);
    let probs = match lse {
        Some(lse) => B::float_exp(B::float_sub(s, lse)),
        None => {
            let exp = B::float_exp(B::float_sub(s.clone(), B::float_max_dim(s, 3)));
            let sum = B::float_sum_dim(exp.clone(), 3);
            B::float_div(exp, sum)
        }
    };
    let dv = matmul::<B>(transpose::<B>(probs.clone()), dout.clone(), bf16);
    let dprobs = matmul::<B>(dout.clone(), transpose::<B>(v), bf16);
    // rowsum(dP ∘ P) equals rowsum(dO ∘ O), which reads head_dim columns instead of T.
    let delta = B::float_sum_dim(B::float_mul(dout, out), 3);
    let dscores = B::float_mul_scalar(
        B::float_mul(probs, B::float_sub(dprobs, delta)),
        scale.into(),
    );
    let dq = matmul::<B>(dscores.clone(), k, bf16);
    let dk = matmul::<B>(transpose::<B>(dscores), q, bf16);
    [dq, dk, dv]
}
