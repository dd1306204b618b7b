//! Operations with hand-written backward passes, for speed and memory on the GPU.
//!
//! Each op is a burn backend extension: the forward is composed of the backend's own primitive
//! ops (so burn's fusion still merges the element-wise parts on CUDA), and under autodiff
//! ([`autodiff`]) it records one graph node whose backward is written in closed form instead of
//! differentiating every primitive. The model uses them when [`super::Compute`] asks;
//! `tests` compares each with the same function composed of burn's plain tensor ops,
//! forward and gradients, and `lmtrain check-ops` does the same on whatever device it runs on.

pub mod attention;
mod autodiff;
pub mod check;
pub mod column_sum;
pub mod cross_entropy;
pub mod layer_norm;
#[cfg(test)]
mod tests;

use burn::backend::tensor::{BoolTensor, FloatTensor, IntTensor};
use burn::backend::{backend_extension, Backend, Dispatch};
use burn::tensor::{Bool, Int, Tensor};

/// The ops, on the backends lmtrain runs: flex (CPU) and, with the `cuda` or `wgpu` feature,
/// cubecl.
#[backend_extension(Flex, Cube: cfg(any(feature = "cuda", feature = "wgpu")), Autodiff)]
pub trait FusedOps: Backend {
    /// Masked attention `[batch, heads, T, head_dim]` → same; see [`attention`].
    fn masked_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: BoolTensor<Self>,
        bf16: bool,
    ) -> FloatTensor<Self> {
        attention::forward::<Self>(q, k, v, mask, bf16).0
    }

    /// Causal attention (T = S) whose forward pass is the backend's own attention kernel
    /// ([`attention::flash_forward`]); `mask` (the causal mask) serves the backward pass only.
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        _mask: BoolTensor<Self>,
        bf16: bool,
    ) -> FloatTensor<Self> {
        attention::flash_forward::<Self>(q, k, v, bf16)
    }

    /// LayerNorm of the rows of `[rows, width]`; see [`layer_norm`].
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        layer_norm::forward::<Self>(x, gamma, beta, eps).0
    }

    /// `x + b` for `x` `[…, width]` and `b` `[1, …, 1, width]` of the same rank; the bias
    /// gradient is a two-stage [`column_sum`]. Neither is reshaped here: an op between a matmul
    /// and this add would stop burn's fusion from folding the add (and a following GELU) into
    /// the matmul's epilogue.
    fn add_bias(x: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_add(x, b)
    }

    /// Mean cross-entropy `[1]` of `[rows, vocab]` logits; see [`cross_entropy`].
    fn mean_cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        cross_entropy::forward::<Self>(logits, targets).0
    }
}

impl FusedOps for burn::backend::Flex {}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
impl FusedOps for burn::backend::Cube {}

/// Masked attention of `q` `[batch, heads, T, head_dim]` over `k`, `v` `[batch, heads, S,
/// head_dim]`, where `mask` `[batch, heads, T, S]` is true for the keys a query may not see
/// (each query must see one). With `bf16`, its matmuls (two in the forward pass, five in the
/// backward) take bf16 operands and return f32.
pub fn masked_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4, Bool>,
    bf16: bool,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::masked_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        mask.into_dispatch(),
        bf16,
    ))
}

/// Causal attention of `q`, `k`, `v` `[batch, heads, T, head_dim]` (queries and keys aligned),
/// its forward pass by the backend's own attention kernel (flash attention on cubecl), its
/// backward pass as [`masked_attention`]'s; `mask` `[batch, heads, T, T]` must be the causal mask.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4, Bool>,
    bf16: bool,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        mask.into_dispatch(),
        bf16,
    ))
}

/// LayerNorm over the last dimension of `x` `[batch, time, width]`, with gain and bias `[width]`.
pub fn layer_norm(x: Tensor<3>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<3> {
    // Flattened to rows: on lavapipe this fused into fewer kernels (69 launches in the forward
    // pass of bench's 2-layer check shape with `--fused`) than LayerNorm over the last
    // dimension of the 3-d tensor (73), unlike the bias add (`add_bias`).
    let [b, t, c] = x.dims();
    let rows = x.reshape([b * t, c]);
    Tensor::<2>::from_dispatch(<Dispatch as FusedOps>::layer_norm_rows(
        rows.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        eps,
    ))
    .reshape([b, t, c])
}

/// `x + b` over the last dimension of `x` `[batch, time, width]`, for `b` `[1, 1, width]`, with a
/// bias gradient summed in two stages ([`column_sum`]) instead of burn's one strided reduction
/// over every token. Shape `b` before computing `x`, so that nothing is queued between the op
/// that makes `x` and this add.
pub fn add_bias(x: Tensor<3>, b: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::add_bias(
        x.into_dispatch(),
        b.into_dispatch(),
    ))
}

/// Mean cross-entropy of rows of `logits` `[n, vocab]` against class ids `[n]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::mean_cross_entropy(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}
