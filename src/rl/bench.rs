//! `lmtrain expert bench`: SAC's steps per second on one environment after the warm-up, the
//! figure scripts/sac_bench.sh compares with CleanRL's PyTorch SAC.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::train_loop::{train_sac, SacRunOptions};
use crate::config::ExpertConfig;

pub struct BenchResult {
    pub seconds: f64,
}

/// Runs `learning_starts` warm-up steps (untimed), then `steps` timed steps with one update
/// each, with the default `[sac]` hyperparameters, in a throw-away run directory.
pub fn bench(
    env: &str,
    learning_starts: u64,
    steps: u64,
    seed: u64,
    device: &str,
) -> Result<BenchResult> {
    let scratch = tempfile::tempdir()?;
    let text = format!(
        "device = {device:?}\n[env]\nid = {env:?}\n[sac]\ntotal_steps = {}\nlearning_starts = {learning_starts}\n\
         [eval]\nevery = 0\nepisodes = 0\nseed = 0\n[train]\nseed = {seed}\nout_dir = {:?}\nlog_every = {}\n\
         [checkpoint]\nevery = {}\nkeep_last = 1\n",
        learning_starts + 1 + steps,
        scratch.path().display().to_string(),
        learning_starts + 1,
        u64::MAX / 2,
    );
    let config = ExpertConfig::from_run_text(&text, std::path::Path::new("<bench>"))?;
    let chosen = crate::device::choose_device(crate::device::DeviceChoice::parse(device)?)?;
    let run = |total: u64| -> Result<f64> {
        let mut c = config.clone();
        c.sac.total_steps = total;
        let dir = scratch.path().join(format!("run-{total}"));
        std::fs::create_dir_all(&dir)?;
        let t = Instant::now();
        train_sac(SacRunOptions {
            run_dir: dir,
            config: c,
            device: chosen.device.clone(),
            resume: None,
            stop: Arc::new(AtomicBool::new(false)),
            stop_after: None,
        })?;
        Ok(t.elapsed().as_secs_f64())
    };
    // The warm-up alone, then warm-up plus window: the difference is the window's time (both
    // include the same start-up and final checkpoint).
    let warm = run(learning_starts + 1)?;
    let full = run(learning_starts + 1 + steps)?;
    Ok(BenchResult {
        seconds: (full - warm).max(1e-9),
    })
}
