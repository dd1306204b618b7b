//! `model.matmul`: which GEMM computes the GPT's linears, and whether this run can have it.

use serde::{Deserialize, Serialize};

/// The GEMM behind the linears (attention's QKᵀ and AV always use burn's matmul).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatmulRoute {
    /// burn's matmul (cubecl's kernels on a GPU), in f32 or, with `model.bf16_matmuls`, on bf16
    /// operands.
    #[default]
    Burn,
    /// cuBLASLt on bf16 operands with f32 accumulation and outputs, the bias add and the bias
    /// gradient fused into the GEMMs' epilogues ([`super::LtOps`]). CUDA only.
    Cublaslt,
}

/// Whether a run on `backend` ("cuda", "wgpu", "cpu"; [`crate::device::ChosenDevice::backend`])
/// uses cuBLASLt for `route`, and the log line that says so when it was asked for. On CUDA the
/// library is looked up and loaded here ([`super::cuda::library::load`]); a run without it
/// uses burn's matmul, saying why.
pub fn resolve(route: MatmulRoute, backend: &str) -> (bool, Option<String>) {
    if route == MatmulRoute::Burn {
        return (false, None);
    }
    if backend != "cuda" {
        return (
            false,
            Some(format!(
                "model.matmul = \"cublaslt\" runs only on CUDA devices; on {backend} the linears use burn's matmul"
            )),
        );
    }
    #[cfg(feature = "cuda")]
    {
        match super::cuda::library::load() {
            Ok(l) => (
                true,
                Some(format!(
                    "linears: cuBLASLt {} ({}, found in {})",
                    super::cuda::library::version_string(l.version),
                    l.path.display(),
                    l.source
                )),
            ),
            Err(e) => (false, Some(format!("{e}; the linears use burn's matmul"))),
        }
    }
    #[cfg(not(feature = "cuda"))]
    (
        false,
        Some("this build has no CUDA support; the linears use burn's matmul".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cuda_gets_cublaslt() {
        assert_eq!(resolve(MatmulRoute::Burn, "cuda"), (false, None));
        let (on, note) = resolve(MatmulRoute::Cublaslt, "cpu");
        assert!(!on);
        assert!(note
            .unwrap()
            .contains("on cpu the linears use burn's matmul"));
    }
}
