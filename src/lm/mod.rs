//! Language modelling: the GPT trained on token windows, through the generic trainer.

pub mod data_bench;
pub mod gen_eval;
pub mod landscape;
pub mod prepare;
pub mod task;

pub use prepare::{prepare_run_data, RunData};
pub use task::LmTask;
