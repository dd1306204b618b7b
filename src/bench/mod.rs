//! `lmtrain bench`: lmtrain's own training step timed on the shapes of the fixed PyTorch
//! reference (`../shared/bench/torch_gpt_bench.py`), printed in its `RESULT key=value` format so
//! that `scripts/gpu_bench.sh` can put the two side by side.

#[cfg(feature = "cuda")]
pub mod check_fixture;
pub mod check_nccl;
pub mod check_ops;
pub mod gemm;
pub mod gpt_step;
pub mod permutation_task;
