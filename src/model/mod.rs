//! Models, built from their configs: the GPT (and, later, the behaviour-cloning policy).

pub mod activation;
#[cfg(test)]
mod compute_tests;
pub mod cublaslt;
pub mod fused;
pub mod gpt;
pub mod params;

pub use activation::Activation;
pub use gpt::{Compute, Gpt, GptShape, KvCache};
pub use params::{HostParams, ParamSpec};
