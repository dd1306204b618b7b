//! The step loop and everything it owns: AdamW, the learning-rate schedule, gradient
//! accumulation, global-norm clipping, the EMA of iterates, checkpoints, logs and progress.
//! It knows nothing of text or robots, only a [`Task`].

pub mod adamw;
pub mod checkpoint;
pub mod clip;
pub mod dp;
pub mod ema;
pub mod log_rewind;
pub mod metrics;
pub mod schedule;
pub mod step;
pub mod task;
pub mod trainer;
pub mod watchdog;

pub use task::Task;
pub use trainer::{train, train_parallel, RunOutcome, TrainOptions};
