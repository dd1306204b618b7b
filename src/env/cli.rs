//! `lmtrain env ...`: replay Gymnasium recordings and time the environments.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;

use super::replay::{replay_file, TOLERANCE};

#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Replay recordings of Gymnasium's own rollouts (scripts/make_env_fixtures.py; e.g.
    /// tests/fixtures/env/*.json) and compare every step's observation, reward and flags. Prints
    /// the largest absolute deviation last; fails on a deviation over 1e-9 or any differing flag.
    Replay {
        /// Recording files (JSON).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Time environment steps and print a `RESULT key=value` line (scripts/env_bench.sh runs it
    /// beside Gymnasium and a bare C mj_step loop).
    Bench {
        /// Gymnasium id: Walker2d-v4, Hopper-v4, HalfCheetah-v4, Ant-v4 or Humanoid-v4.
        #[arg(long, default_value = "Walker2d-v4")]
        env: String,
        /// Environment steps in all (over all threads).
        #[arg(long, default_value_t = 20_000)]
        steps: usize,
        /// Threads stepping environments in parallel.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Environments in all (a multiple of --threads; each thread steps its own in turn).
        #[arg(long)]
        envs: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

pub fn run(command: EnvCommand) -> Result<()> {
    match command {
        EnvCommand::Replay { files } => replay_command(&files),
        EnvCommand::Bench {
            env,
            steps,
            threads,
            envs,
            seed,
        } => {
            let r = super::bench::bench(&env, steps, threads, envs.unwrap_or(threads), seed)?;
            println!(
                "RESULT env={} threads={} envs={} steps={} episodes={} seconds={:.3} steps_per_s={:.0}",
                r.env,
                r.threads,
                r.envs,
                r.steps,
                r.episodes,
                r.seconds,
                r.steps_per_s()
            );
            Ok(())
        }
    }
}

fn replay_command(files: &[PathBuf]) -> Result<()> {
    let mut largest = 0.0f64;
    let mut failed = Vec::new();
    for file in files {
        let r = replay_file(file)?;
        let status = if r.passed() { "ok" } else { "FAILED" };
        let at = if r.worst.is_empty() {
            String::new()
        } else {
            format!(" at {}", r.worst)
        };
        println!(
            "{status} {}: {} steps, largest absolute deviation {:e}{at}",
            file.display(),
            r.steps,
            r.max_deviation
        );
        for m in &r.mismatches {
            println!("  mismatch: {m}");
        }
        largest = largest.max(r.max_deviation);
        if !r.passed() {
            failed.push(file.display().to_string());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} recordings differ from lmtrain's environments (tolerance {TOLERANCE:e}, flags \
             must be equal): {}; largest absolute deviation {largest:e}",
            failed.len(),
            files.len(),
            failed.join(", ")
        );
    }
    println!("largest absolute deviation {largest:e}");
    Ok(())
}
