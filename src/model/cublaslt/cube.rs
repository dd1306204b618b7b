//! [`LtOps`] on burn's cubecl backend: cuBLASLt on CUDA devices (`super::cuda`, with the `cuda`
//! feature), the reference bodies everywhere else (wgpu, and CUDA when cuBLASLt is missing or
//! refuses a shape, said once). Under burn's fusion each method is one opaque custom operation
//! that runs this backend's body.

use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;

use super::{reference, LtOps};

#[cfg(feature = "cuda")]
use super::cuda;

type B = CubeBackend;

/// Tries `f` on cuBLASLt when `device` is a CUDA device it can serve; `None` to use the
/// reference body.
#[cfg(feature = "cuda")]
fn on_cublaslt<T>(
    what: &str,
    t: &CubeTensor,
    f: impl FnOnce(usize) -> Result<T, String>,
) -> Option<T> {
    let index = cuda::usable(&t.device)?;
    f(index).map_err(|e| cuda::fall_back(what, &e)).ok()
}

impl LtOps for CubeBackend {
    fn lt_linear(x: CubeTensor, w: CubeTensor, w_out_in: bool) -> CubeTensor {
        #[cfg(feature = "cuda")]
        if let Some((y, _)) = on_cublaslt("forward", &x, |i| {
            cuda::linear(i, x.clone(), w.clone(), None, w_out_in)
        }) {
            return y;
        }
        reference::linear::<B>(x, w, w_out_in)
    }

    fn lt_linear_bias(x: CubeTensor, w: CubeTensor, b: CubeTensor, w_out_in: bool) -> CubeTensor {
        #[cfg(feature = "cuda")]
        if let Some((y, bias_added)) = on_cublaslt("forward with bias", &x, |i| {
            cuda::linear(i, x.clone(), w.clone(), Some(b.clone()), w_out_in)
        }) {
            return if bias_added {
                y
            } else {
                reference::add_bias::<B>(y, b)
            };
        }
        reference::linear_bias::<B>(x, w, b, w_out_in)
    }

    fn lt_grad_input(dy: CubeTensor, w: CubeTensor, w_out_in: bool) -> CubeTensor {
        #[cfg(feature = "cuda")]
        if let Some(dx) = on_cublaslt("input gradient", &dy, |i| {
            cuda::grad_input(i, dy.clone(), w.clone(), w_out_in)
        }) {
            return dx;
        }
        reference::grad_input::<B>(dy, w, w_out_in)
    }

    fn lt_grad_weight(x: CubeTensor, dy: CubeTensor, w_out_in: bool) -> CubeTensor {
        #[cfg(feature = "cuda")]
        if let Some((dw, _)) = on_cublaslt("weight gradient", &x, |i| {
            cuda::grad_weight(i, x.clone(), dy.clone(), w_out_in, false)
        }) {
            return dw;
        }
        reference::grad_weight::<B>(x, dy, w_out_in)
    }

    fn lt_grad_weight_bias(
        x: CubeTensor,
        dy: CubeTensor,
        w_out_in: bool,
    ) -> (CubeTensor, CubeTensor) {
        #[cfg(feature = "cuda")]
        if let Some((dw, db)) = on_cublaslt("weight and bias gradients", &x, |i| {
            cuda::grad_weight(i, x.clone(), dy.clone(), w_out_in, true)
        }) {
            let db = db.unwrap_or_else(|| reference::grad_bias::<B>(dy));
            return (dw, db);
        }
        (
            reference::grad_weight::<B>(x, dy.clone(), w_out_in),
            reference::grad_bias::<B>(dy),
        )
    }
}
