//! The linear layer with bf16 operands and f32 accumulation as a burn backend extension, with a
//! hand-written backward pass (issue 18; `docs/design/cublaslt-linear.md` §3).
//!
//! The trait's methods are the three GEMMs of a linear layer on bf16 operands, each giving f32
//! (cuBLASLt's `CUBLAS_COMPUTE_32F` with bf16 A/B and f32 D). Their default bodies are the
//! reference: the operands cast to f32 and multiplied in f32, which is what the GEMM computes up
//! to summation order. On CUDA the cubecl backend is to override them with cuBLASLt calls (the
//! bias add in the forward GEMM's epilogue, the bias gradient in the weight gradient's); until
//! then every backend uses the reference. [`LtOps::linear_bf16`] is the differentiable op the
//! model calls: f32 parameters in, f32 out; under autodiff it is one graph node that keeps the
//! bf16 operands (half the bytes of f32). Its backward GEMMs take the output gradient rounded to
//! bf16 as an operand, as the forward takes x and w, and return f32 gradients (dW is not rounded
//! to bf16 afterwards, as it would be through a cast node).
//!
//! Shapes: `x` `[M, K]`; `w` `[K, N]` as the project stores weights, or `[N, K]` when
//! `w_out_in` (the tied LM head's `wte`, used transposed); `b` `[N]`; `y` `[M, N]`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch};
use burn::tensor::{FloatDType, Tensor};

use crate::model::fused::column_sum::{along_last_dim, column_sum};

fn f32_of<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_cast(t, FloatDType::F32)
}

pub(super) fn bf16_of<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_cast(t, FloatDType::BF16)
}

/// `w` as the right operand `[K, N]` of `x·w`.
fn op_w<B: Backend>(w: FloatTensor<B>, w_out_in: bool) -> FloatTensor<B> {
    if w_out_in {
        B::float_transpose(w)
    } else {
        w
    }
}

/// The ops, on the backends lmtrain runs: flex (CPU) and, with the `cuda` or `wgpu` feature,
/// cubecl.
#[backend_extension(Flex, Cube: cfg(any(feature = "cuda", feature = "wgpu")), Autodiff)]
pub trait LtOps: Backend {
    /// `y = x·op(w)` in f32 from bf16 `x`, `w`.
    fn lt_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, w_out_in: bool) -> FloatTensor<Self> {
        Self::float_matmul(f32_of::<Self>(x), op_w::<Self>(f32_of::<Self>(w), w_out_in))
    }

    /// `y = x·op(w) + b` in f32 from bf16 `x`, `w` and f32 `b` (cuBLASLt: epilogue BIAS).
    fn lt_linear_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::float_add(
            Self::lt_linear(x, w, w_out_in),
            along_last_dim::<Self>(b, 2),
        )
    }

    /// `dx = dy·op(w)ᵀ` `[M, K]` in f32 from bf16 `dy` `[M, N]` and `w`.
    fn lt_grad_input(
        dy: FloatTensor<Self>,
        w: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        let w = f32_of::<Self>(w);
        // op(w)ᵀ is w itself when it is stored [N, K].
        let wt = if w_out_in {
            w
        } else {
            Self::float_transpose(w)
        };
        Self::float_matmul(f32_of::<Self>(dy), wt)
    }

    /// The weight gradient in `w`'s layout, in f32 from bf16 `x` `[M, K]` and `dy` `[M, N]`:
    /// `xᵀ·dy` `[K, N]`, or `dyᵀ·x` `[N, K]` when `w_out_in`.
    fn lt_grad_weight(
        x: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        let (x, dy) = (f32_of::<Self>(x), f32_of::<Self>(dy));
        if w_out_in {
            Self::float_matmul(Self::float_transpose(dy), x)
        } else {
            Self::float_matmul(Self::float_transpose(x), dy)
        }
    }

    /// The bias gradient `[N]`, the column sums of bf16 `dy` `[M, N]`, in f32 (cuBLASLt: the
    /// weight gradient's BGRAD epilogue).
    fn lt_grad_bias(dy: FloatTensor<Self>) -> FloatTensor<Self> {
        column_sum::<Self>(f32_of::<Self>(dy))
    }

    /// The differentiable linear layer: f32 `x`, `w`, `b` cast to bf16 for the GEMMs (`b`
    /// stays f32), f32 `y`. See the module docs for the shapes.
    fn linear_bf16(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::lt_linear_bias(bf16_of::<Self>(x), bf16_of::<Self>(w), b, w_out_in)
    }

    /// [`LtOps::linear_bf16`] without a bias (the tied LM head).
    fn linear_bf16_no_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::lt_linear(bf16_of::<Self>(x), bf16_of::<Self>(w), w_out_in)
    }
}

impl LtOps for burn::backend::Flex {}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
impl LtOps for burn::backend::Cube {}

/// [`LtOps::linear_bf16`] on tensors: `x` `[M, K]`, `w` `[K, N]` (or `[N, K]` when `w_out_in`),
/// `b` `[N]` (`None`: no bias); `y` `[M, N]` in f32.
pub fn linear_bf16(x: Tensor<2>, w: Tensor<2>, b: Option<Tensor<1>>, w_out_in: bool) -> Tensor<2> {
    Tensor::from_dispatch(match b {
        Some(b) => <Dispatch as LtOps>::linear_bf16(
            x.into_dispatch(),
            w.into_dispatch(),
            b.into_dispatch(),
            w_out_in,
        ),
        None => {
            <Dispatch as LtOps>::linear_bf16_no_bias(x.into_dispatch(), w.into_dispatch(), w_out_in)
        }
    })
}
