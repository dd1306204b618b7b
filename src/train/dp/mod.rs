//! Data-parallel training (issue 19): the pieces that can be built and checked without a GPU,
//! used by [`crate::train::trainer::train_parallel`] when the `device` key lists several
//! devices ([`group::DataParallel`]).
//!
//! - [`allreduce`]: the [`AllReduce`] trait (mean of one flat f32 buffer across workers, a
//!   barrier), its deterministic in-process stand-in ([`InProcessAllReduce`]: threads, a
//!   barrier, a sum in rank order divided by the worker count) and, with the `cuda` feature,
//!   the production implementation over burn's NCCL all-reduce ([`allreduce::NcclAllReduce`]).
//! - [`nccl_lib`]: finding NCCL's library (`LMTRAIN_NCCL`, `LD_LIBRARY_PATH`, the pip
//!   wheel, the system) before a run on several CUDA devices starts.
//! - [`shard`]: [`RowSplit`], how one producer splits a micro-batch's rows evenly over the
//!   workers (language-model and behaviour-cloning batches).
//! - [`step`]: the data-parallel optimizer step. Each worker computes the gradients of its
//!   share of every micro-batch with the single-device step's own functions
//!   ([`crate::train::step::micro_batch_gradients`]), flattens them (and its loss) into one
//!   buffer, all-reduces it (mean), and applies the update every worker then computes
//!   identically ([`crate::train::step::apply_gradients`]: global-norm clip, AdamW, EMA).
//!
//! # Equivalence with one worker
//!
//! W workers with B/W rows each take the same step as one worker with all B rows (up to the
//! order of floating-point sums) when the task's loss is a mean over rows of per-row losses
//! that do not depend on the other rows, and the W shards have equal sizes: then the mean over
//! workers of the shard means is the batch mean, and so are its gradients. The language-model
//! loss (a mean over `[B, T]` tokens, every window of the same length) and the BC losses
//! without padding qualify; a loss normalised by a count that differs between shards (BC
//! windows with padded, masked positions) does not, and dropout masks drawn for `[B/W, …]`
//! cannot reproduce those drawn for `[B, …]`, so the equivalence holds at dropout 0 only.
//!
//! # Sources
//!
//! burn 0.22.1's collective API: `burn-tensor-0.22.1/src/tensor/distributed.rs`
//! (`all_reduce(tensor, ReduceOperation::Mean, devices) -> CollectiveTensor`, `resolve()`),
//! `burn-std-0.22.1/src/distributed.rs` (`ReduceOperation`), implemented only by the CUDA
//! runtime through NCCL (`cubecl-cuda-0.11.3/src/compute/communication.rs`); the CPU backends
//! have none, hence the stand-in. `../shared/notes/distributed-training.md` has the details.

pub mod allreduce;
pub mod group;
pub mod nccl_lib;
pub mod probe;
pub mod shard;
pub mod step;

pub use allreduce::{AllReduce, InProcessAllReduce};
pub use group::{preflight, DataParallel};
pub use shard::RowSplit;
pub use step::{data_parallel_step, draw_shards, worker_step, Worker};
