//! The linear layer with bf16 operands and f32 accumulation as a burn backend extension, with a
//! hand-written backward pass (issue 18; `docs/design/cublaslt-linear.md` §3).
//!
//! The trait's methods are the three GEMMs of a linear layer on bf16 operands, each giving f32
//! (cuBLASLt's `CUBLAS_COMPUTE_32F` with bf16 A/B and f32 D). Their default bodies are the
//! reference: the operands cast to f32 and multiplied in f32, which is what the GEMM computes up
//! to summation order ([`super::reference`]). On a CUDA device the cubecl backend overrides them
//! with cuBLASLt calls on cubecl's stream (the bias add in the forward GEMM's epilogue, the bias
//! gradient in the weight gradient's; `super::cube`); every other backend and device uses the
//! reference. [`LtOps::linear_bf16`] is the differentiable op the
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

use super::reference;

pub(super) fn bf16_of<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_cast(t, FloatDType::BF16)
}

/// Output shapes for burn's fusion, which records the GEMMs as opaque custom operations and
/// needs each output's shape and dtype before running them.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod meta {
    use burn::backend::fusion::custom::TensorSpec;
    use burn::tensor::{DType, Shape};

    fn f32_spec(dims: [usize; 2]) -> TensorSpec {
        TensorSpec::new(Shape::new(dims), DType::F32)
    }

    /// `[K, N]` of `w`, stored `[K, N]` or, when `w_out_in`, `[N, K]`.
    fn kn(w: &TensorSpec, w_out_in: bool) -> (usize, usize) {
        let d = w.shape.as_slice();
        if w_out_in {
            (d[1], d[0])
        } else {
            (d[0], d[1])
        }
    }

    /// `y [M, N]`.
    pub fn linear(x: &TensorSpec, w: &TensorSpec, w_out_in: &bool) -> TensorSpec {
        f32_spec([x.shape.as_slice()[0], kn(w, *w_out_in).1])
    }

    pub fn linear_bias(
        x: &TensorSpec,
        w: &TensorSpec,
        _b: &TensorSpec,
        w_out_in: &bool,
    ) -> TensorSpec {
        linear(x, w, w_out_in)
    }

    /// `dx [M, K]`.
    pub fn grad_input(dy: &TensorSpec, w: &TensorSpec, w_out_in: &bool) -> TensorSpec {
        f32_spec([dy.shape.as_slice()[0], kn(w, *w_out_in).0])
    }

    /// `dw` in `w`'s layout: `[K, N]`, or `[N, K]` when `w_out_in`.
    pub fn grad_weight(x: &TensorSpec, dy: &TensorSpec, w_out_in: &bool) -> TensorSpec {
        let (k, n) = (x.shape.as_slice()[1], dy.shape.as_slice()[1]);
        f32_spec(if *w_out_in { [n, k] } else { [k, n] })
    }

    /// `(dw, db [N])`.
    pub fn grad_weight_bias(
        x: &TensorSpec,
        dy: &TensorSpec,
        w_out_in: &bool,
    ) -> (TensorSpec, TensorSpec) {
        let n = dy.shape.as_slice()[1];
        (
            grad_weight(x, dy, w_out_in),
            TensorSpec::new(Shape::new([n]), DType::F32),
        )
    }

    /// `db [N]`.
    pub fn grad_bias(dy: &TensorSpec) -> TensorSpec {
        TensorSpec::new(Shape::new([dy.shape.as_slice()[1]]), DType::F32)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The shapes fusion is told agree with the reference bodies' (M 5, K 3, N 7), for
        /// both weight layouts.
        #[test]
        fn output_shapes() {
            let s = |d: [usize; 2]| TensorSpec::new(Shape::new(d), DType::BF16);
            let dims = |t: TensorSpec| (t.shape.as_slice().to_vec(), t.dtype);
            let f = |d: Vec<usize>| (d, DType::F32);
            let (x, dy) = (s([5, 3]), s([5, 7]));
            for (w, out_in) in [(s([3, 7]), false), (s([7, 3]), true)] {
                assert_eq!(dims(linear(&x, &w, &out_in)), f(vec![5, 7]));
                assert_eq!(
                    dims(linear_bias(&x, &w, &s([7, 1]), &out_in)),
                    f(vec![5, 7])
                );
                assert_eq!(dims(grad_input(&dy, &w, &out_in)), f(vec![5, 3]));
                let dw = if out_in { vec![7, 3] } else { vec![3, 7] };
                assert_eq!(dims(grad_weight(&x, &dy, &out_in)), f(dw.clone()));
                let (a, b) = grad_weight_bias(&x, &dy, &out_in);
                assert_eq!((dims(a), dims(b)), (f(dw), f(vec![7])));
            }
            assert_eq!(dims(grad_bias(&dy)), f(vec![7]));
        }
    }
}

/// The ops, on the backends lmtrain runs: flex (CPU) and, with the `cuda` or `wgpu` feature,
/// cubecl under burn's fusion, where each GEMM is one opaque custom operation and the casts
/// before it fuse into their producers.
#[backend_extension(
    Flex,
    Cube: cfg(any(feature = "cuda", feature = "wgpu")),
    Fusion: cfg(any(feature = "cuda", feature = "wgpu")),
    Autodiff
)]
pub trait LtOps: Backend {
    /// `y = x·op(w)` in f32 from bf16 `x`, `w`.
    #[fusion(meta = meta::linear)]
    fn lt_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, w_out_in: bool) -> FloatTensor<Self> {
        reference::linear::<Self>(x, w, w_out_in)
    }

    /// `y = x·op(w) + b` in f32 from bf16 `x`, `w` and f32 `b` (cuBLASLt: epilogue BIAS).
    #[fusion(meta = meta::linear_bias)]
    fn lt_linear_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        reference::linear_bias::<Self>(x, w, b, w_out_in)
    }

    /// `dx = dy·op(w)ᵀ` `[M, K]` in f32 from bf16 `dy` `[M, N]` and `w`.
    #[fusion(meta = meta::grad_input)]
    fn lt_grad_input(
        dy: FloatTensor<Self>,
        w: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        reference::grad_input::<Self>(dy, w, w_out_in)
    }

    /// The weight gradient in `w`'s layout, in f32 from bf16 `x` `[M, K]` and `dy` `[M, N]`:
    /// `xᵀ·dy` `[K, N]`, or `dyᵀ·x` `[N, K]` when `w_out_in`.
    #[fusion(meta = meta::grad_weight)]
    fn lt_grad_weight(
        x: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        reference::grad_weight::<Self>(x, dy, w_out_in)
    }

    /// The weight and bias gradients together: [`LtOps::lt_grad_weight`] and the column sums of
    /// `dy` `[N]` (cuBLASLt: the weight gradient's BGRADA epilogue, for `w` stored `[K, N]`).
    #[fusion(meta = meta::grad_weight_bias)]
    fn lt_grad_weight_bias(
        x: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        w_out_in: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        (
            reference::grad_weight::<Self>(x, dy.clone(), w_out_in),
            reference::grad_bias::<Self>(dy),
        )
    }

    /// The bias gradient `[N]`, the column sums of bf16 `dy` `[M, N]`, in f32.
    #[fusion(meta = meta::grad_bias)]
    fn lt_grad_bias(dy: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::grad_bias::<Self>(dy)
    }

    /// The differentiable linear layer: f32 `x`, `w`, `b` cast to bf16 for the GEMMs (`b`
    /// stays f32), f32 `y`. See the module docs for the shapes.
    #[fusion(default)]
    fn linear_bf16(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::lt_linear_bias(bf16_of::<Self>(x), bf16_of::<Self>(w), b, w_out_in)
    }

    /// [`LtOps::linear_bf16`] without a bias (the tied LM head).
    #[fusion(default)]
    fn linear_bf16_no_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::lt_linear(bf16_of::<Self>(x), bf16_of::<Self>(w), w_out_in)
    }
}

impl LtOps for burn::backend::Flex {}

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

/// One of the op's GEMMs, for benchmarks and checks that call them without autodiff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LtCall {
    /// [`LtOps::lt_linear`] (`bias` None) or [`LtOps::lt_linear_bias`]: `a` = x, `b` = w.
    Forward { w_out_in: bool },
    /// [`LtOps::lt_grad_input`]: `a` = dy, `b` = w.
    GradInput { w_out_in: bool },
    /// [`LtOps::lt_grad_weight`], or with the bias gradient [`LtOps::lt_grad_weight_bias`]
    /// (which is dropped): `a` = x, `b` = dy.
    GradWeight { w_out_in: bool, with_bias: bool },
}

/// Runs `call` on bf16 `a`, `b` (and an f32 `bias` for the forward); f32 out. Shapes as in the
/// module docs.
pub fn lt_call(call: LtCall, a: Tensor<2>, b: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    type D = Dispatch;
    let (a, b) = (a.into_dispatch(), b.into_dispatch());
    Tensor::from_dispatch(match call {
        LtCall::Forward { w_out_in } => match bias {
            Some(bias) => <D as LtOps>::lt_linear_bias(a, b, bias.into_dispatch(), w_out_in),
            None => <D as LtOps>::lt_linear(a, b, w_out_in),
        },
        LtCall::GradInput { w_out_in } => <D as LtOps>::lt_grad_input(a, b, w_out_in),
        LtCall::GradWeight {
            w_out_in,
            with_bias: false,
        } => <D as LtOps>::lt_grad_weight(a, b, w_out_in),
        LtCall::GradWeight {
            w_out_in,
            with_bias: true,
        } => <D as LtOps>::lt_grad_weight_bias(a, b, w_out_in).0,
    })
}
