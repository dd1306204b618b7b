//! The cuBLASLt route for the GPT's linears (issue 18): bf16 operands, f32 accumulation, the bias
//! add fused into the forward GEMM's epilogue and the bias gradient into a backward GEMM's.
//!
//! cuBLASLt is column-major and the project's tensors are row-major, so every call goes through
//! one mapping, [`layout::LtGemm::from_row_major`], which a CPU test checks against a reference
//! column-major GEMM with cuBLASLt's semantics. [`ops::LtOps`] is the op, with reference bodies
//! on every backend for now; its CUDA body, which will issue the calls on cubecl's stream through
//! this mapping, is not built yet. The design, with the sources it rests on, is in
//! `docs/design/cublaslt-linear.md`.

mod autodiff;
pub mod layout;
pub mod ops;
#[cfg(test)]
mod tests;

pub use ops::{linear_bf16, LtOps};
