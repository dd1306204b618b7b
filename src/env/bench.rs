//! Step rate: one environment on one thread, or a batch of environments stepped in parallel on
//! several threads. Random actions are drawn before timing (as scripts/env_bench.sh does for
//! Gymnasium and for the bare C loop), and an episode that ends is reset, so the timed loop is
//! `step` plus the occasional `reset`.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{make, Env};

/// How many distinct actions are drawn and cycled through.
const ACTION_POOL: usize = 1000;

#[derive(Debug, Clone)]
pub struct BenchResult {
    pub env: String,
    pub threads: usize,
    pub envs: usize,
    pub steps: usize,
    /// Episodes that ended (and were reset) during the timed steps: their mean length says
    /// whether two loops did comparable work (a fallen robot has more contacts to solve).
    pub episodes: usize,
    pub seconds: f64,
}

impl BenchResult {
    pub fn steps_per_s(&self) -> f64 {
        self.steps as f64 / self.seconds
    }
}

fn action_pool(env: &dyn Env, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (low, high) = env.action_bounds();
    (0..ACTION_POOL)
        .map(|_| {
            low.iter()
                .zip(high)
                .map(|(&l, &h)| l + (h - l) * rng.random::<f32>())
                .collect()
        })
        .collect()
}

/// Steps each env in `envs` in turn for `steps` steps in all; resets an env whose episode ends.
/// Returns the number of episodes that ended.
fn run_envs(
    envs: &mut [Box<dyn Env>],
    pool: &[Vec<f32>],
    steps: usize,
    seed: u64,
) -> Result<usize> {
    let mut resets = seed;
    let mut ended = 0;
    for i in 0..steps {
        let k = i % envs.len();
        let env = &mut envs[k];
        let s = env.step(&pool[i % pool.len()])?;
        if s.terminated || s.truncated {
            resets += 1;
            ended += 1;
            env.reset(resets)?;
        }
    }
    Ok(ended)
}

/// Times `steps` environment steps of `id` spread over `envs` environments on `threads` threads
/// (each thread owns `envs / threads` of them).
pub fn bench(
    id: &str,
    steps: usize,
    threads: usize,
    envs: usize,
    seed: u64,
) -> Result<BenchResult> {
    if threads == 0 || envs == 0 || !envs.is_multiple_of(threads) {
        bail!("--envs ({envs}) must be a positive multiple of --threads ({threads})");
    }
    let per_thread = steps / threads;
    // Build and reset everything before timing.
    let mut groups: Vec<Vec<Box<dyn Env>>> = (0..threads)
        .map(|t| {
            (0..envs / threads)
                .map(|e| {
                    let mut env = make(id)?;
                    env.reset(seed + (t * envs + e) as u64 * 1_000_000)?;
                    Ok(env)
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let pool = action_pool(groups[0][0].as_ref(), seed);
    let start = Instant::now();
    let episodes = std::thread::scope(|scope| -> Result<usize> {
        let handles: Vec<_> = groups
            .iter_mut()
            .enumerate()
            .map(|(t, group)| {
                let pool = &pool;
                scope.spawn(move || run_envs(group, pool, per_thread, seed + t as u64 * 1_000_000))
            })
            .collect();
        let mut episodes = 0;
        for h in handles {
            episodes += h
                .join()
                .map_err(|_| anyhow::anyhow!("a bench thread panicked"))?
                .context("bench thread")?;
        }
        Ok(episodes)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(BenchResult {
        env: id.to_string(),
        threads,
        envs,
        steps: per_thread * threads,
        episodes,
        seconds,
    })
}
