//! lmtrain's integration tests: one test crate (one binary to link), a module per concern.

#[cfg(feature = "mujoco")]
mod bc;
mod bc_linear;
mod bench_cli;
mod cases;
mod cli_errors;
mod common;
mod config_table;
mod data_parallel;
#[cfg(feature = "mujoco")]
mod env_api;
#[cfg(feature = "mujoco")]
mod env_replay;
mod fixture;
mod generation_eval;
mod interop;
mod lm_landscape;
mod report;
mod resume;
mod sac;
mod sampling;
mod shipped_configs;
mod warmup;
