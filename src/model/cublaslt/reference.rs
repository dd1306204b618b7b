//! The reference bodies of [`super::LtOps`]: the bf16 operands cast to f32 and multiplied by the
//! backend's own f32 matmul, which is what cuBLASLt's `CUBLAS_COMPUTE_32F` GEMM on bf16 A/B with
//! f32 D computes, up to summation order. Every backend uses them, except the cubecl backend on a
//! CUDA device with cuBLASLt loaded (`super::cube`), which falls back to them elsewhere.
//!
//! Shapes as in [`super::ops`]: `x` `[M, K]`, `w` `[K, N]` (or `[N, K]` when `w_out_in`), `b`
//! `[N]`, `dy` `[M, N]`; every output f32.

use burn::backend::tensor::FloatTensor;
use burn::backend::Backend;
use burn::tensor::FloatDType;

use crate::model::fused::column_sum::{along_last_dim, column_sum};

fn f32_of<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_cast(t, FloatDType::F32)
}

/// `y = x·op(w)`.
pub fn linear<B: Backend>(x: FloatTensor<B>, w: FloatTensor<B>, w_out_in: bool) -> FloatTensor<B> {
    let w = f32_of::<B>(w);
    let w = if w_out_in { B::float_transpose(w) } else { w };
    B::float_matmul(f32_of::<B>(x), w)
}

/// `y + b`, `b` `[N]` broadcast over the rows of `y` `[M, N]`.
pub fn add_bias<B: Backend>(y: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    B::float_add(y, along_last_dim::<B>(b, 2))
}

/// `y = x·op(w) + b`.
pub fn linear_bias<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    b: FloatTensor<B>,
    w_out_in: bool,
) -> FloatTensor<B> {
    add_bias::<B>(linear::<B>(x, w, w_out_in), b)
}

/// `dx = dy·op(w)ᵀ` `[M, K]`.
pub fn grad_input<B: Backend>(
    dy: FloatTensor<B>,
    w: FloatTensor<B>,
    w_out_in: bool,
) -> FloatTensor<B> {
    let w = f32_of::<B>(w);
    // op(w)ᵀ is w itself when it is stored [N, K].
    let wt = if w_out_in { w } else { B::float_transpose(w) };
    B::float_matmul(f32_of::<B>(dy), wt)
}

/// The weight gradient in `w`'s layout: `xᵀ·dy` `[K, N]`, or `dyᵀ·x` `[N, K]` when `w_out_in`.
pub fn grad_weight<B: Backend>(
    x: FloatTensor<B>,
    dy: FloatTensor<B>,
    w_out_in: bool,
) -> FloatTensor<B> {
    let (x, dy) = (f32_of::<B>(x), f32_of::<B>(dy));
    if w_out_in {
        B::float_matmul(B::float_transpose(dy), x)
    } else {
        B::float_matmul(B::float_transpose(x), dy)
    }
}

/// The bias gradient `[N]`: the column sums of `dy`.
pub fn grad_bias<B: Backend>(dy: FloatTensor<B>) -> FloatTensor<B> {
    column_sum::<B>(f32_of::<B>(dy))
}
