//! lmtrain: a GPT trainer in burn for studying gradient variance amplification (GVA).
//!
//! Data flows one way: parquet shards → tokenizer → token windows → batches → a [`train::Task`]
//! → the trainer (AdamW, schedule, accumulation, global clipping, EMA of iterates, checkpoints)
//! → run directory.

pub mod bc;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
#[cfg(feature = "mujoco")]
pub mod env;
pub mod eval;
pub mod fault;
pub mod fsutil;
pub mod generate;
pub mod interop;
pub mod kernel_cache;
pub mod landscape;
pub mod lm;
pub mod model;
pub mod report;
pub mod rl;
pub mod run;
pub mod sample;
pub mod threads;
pub mod train;
