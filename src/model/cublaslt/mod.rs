//! The cuBLASLt route for the GPT's linears (issue 18): bf16 operands, f32 accumulation, the bias
//! add fused into the forward GEMM's epilogue and the bias gradient into a backward GEMM's.
//!
//! cuBLASLt is column-major and the project's tensors are row-major, so every call goes through
//! one mapping, [`layout::LtGemm::from_row_major`], which a CPU test checks against a reference
//! column-major GEMM with cuBLASLt's semantics. [`ops::LtOps`] is the op: reference bodies
//! (`reference`) on every backend, and on the cubecl backend's CUDA devices cuBLASLt calls on
//! cubecl's own stream (`cube`, `cuda`), each an opaque custom operation in burn's fusion graph.
//! [`route::MatmulRoute`] is the `model.matmul` key that picks it for the GPT's linears. The
//! design, with the sources it rests on, is in `docs/design/cublaslt-linear.md`; nothing of the
//! CUDA body has run on a GPU yet.

mod autodiff;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod cube;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod layout;
pub mod ops;
mod reference;
pub mod route;
#[cfg(test)]
mod tests;

pub use ops::{linear_bf16, LtOps};
pub use route::MatmulRoute;

/// (whole-GEMM, epilogue) fall-backs of the cuBLASLt op so far ([`cuda::fallback_counts`]);
/// none in a build without CUDA.
pub fn fallback_counts() -> (usize, usize) {
    #[cfg(feature = "cuda")]
    let counts = cuda::fallback_counts();
    #[cfg(not(feature = "cuda"))]
    let counts = (0, 0);
    counts
}
