//! A small data-parallel problem shared by the step's equivalence test and `lmtrain
//! check-nccl`: the linear-system BC testbed (a 4×4 matrix from zero: no dataset, no dropout,
//! a per-pair mean loss, so W workers with B/W rows each take the step one worker takes with B)
//! under AdamW with clipping, two micro-batches per step and the EMA past its burn-in.

use anyhow::{Context, Result};

use crate::bc::linear::LinearTask;
use crate::config::{
    BcEvalConfig, EmaConfig, LinearConfig, LoopConfig, OptimConfig, ScheduleConfig, TrainConfig,
};

/// The loop config: `batch_size` rows per micro-batch, `max_steps` steps, seed 5.
///
/// # Errors
/// Only if the built-in train table stopped parsing.
pub fn probe_config(batch_size: usize, max_steps: u64) -> Result<LoopConfig> {
    let train: TrainConfig = toml::from_str(&format!(
        "max_steps = {max_steps}\nbatch_size = {batch_size}\nseed = 5"
    ))
    .context("the probe's train table")?;
    Ok(LoopConfig {
        optim: OptimConfig {
            lr: 0.05,
            grad_accum: 2,
            grad_clip: 0.5,
            ..OptimConfig::default()
        },
        schedule: ScheduleConfig::default(),
        ema: EmaConfig {
            burn_in: 1,
            ..EmaConfig::default()
        },
        train,
        checkpoint: Default::default(),
        val_every: 100,
        toml: String::new(),
    })
}

/// The testbed task for `cfg` (256 training pairs, 4 validation pairs).
///
/// # Errors
/// The testbed's own (none for these sizes).
pub fn probe_task(cfg: &LoopConfig) -> Result<LinearTask> {
    let lin = LinearConfig {
        dim: 4,
        noise: 0.5,
        samples: 256,
        val_samples: 4,
        a_scale: 0.3,
        system_seed: 1,
    };
    LinearTask::new(
        &lin,
        &BcEvalConfig::default(),
        cfg.train.batch_size,
        cfg.train.seed,
    )
}
