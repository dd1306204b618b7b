//! Models, built from their configs: the GPT (and, later, the behaviour-cloning policy).

pub mod activation;
pub mod gpt;
pub mod params;

pub use activation::Activation;
pub use gpt::{Gpt, GptShape, KvCache};
pub use params::{HostParams, ParamSpec};
