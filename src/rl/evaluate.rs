//! Deterministic evaluation of an actor: whole episodes from given reset seeds, in parallel
//! over episodes (each on its own environment instance).

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use super::environment;
use super::policy::HostActor;

/// Actions recorded per episode for cross-checks (`--trace`).
pub const TRACED_ACTIONS: usize = 20;

/// One evaluation episode.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Episode {
    pub seed: u64,
    /// The start state (MuJoCo environments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qpos: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qvel: Option<Vec<f64>>,
    #[serde(rename = "return")]
    pub ret: f64,
    pub length: usize,
    /// Ended unhealthy (terminated) rather than by the time limit.
    pub terminated: bool,
    /// The first [`TRACED_ACTIONS`] actions.
    pub actions: Vec<Vec<f32>>,
    /// The observations those actions were taken in (as the environment gave them, f64), so
    /// that another implementation can check the policy's numerics open-loop on the same
    /// states, apart from the closed loop's drift.
    pub observations: Vec<Vec<f64>>,
}

/// Runs the deterministic policy (`tanh(μ)·scale + bias`) for one episode from `seed`.
pub fn episode(env_id: &str, actor: &HostActor, seed: u64) -> Result<Episode> {
    let mut env = environment::make(env_id)?;
    let mut obs = env.reset(seed)?;
    let start = env.joint_state();
    let mut ep = Episode {
        seed,
        qpos: start.as_ref().map(|s| s.0.clone()),
        qvel: start.map(|s| s.1),
        ret: 0.0,
        length: 0,
        terminated: false,
        actions: Vec::new(),
        observations: Vec::new(),
    };
    loop {
        let action = actor.mean_action(&obs);
        let o = env
            .step(&action)
            .with_context(|| format!("{env_id} evaluation episode with seed {seed}"))?;
        if ep.actions.len() < TRACED_ACTIONS {
            ep.actions.push(action);
            ep.observations.push(obs.clone());
        }
        ep.ret += o.reward;
        ep.length += 1;
        if o.terminated || o.truncated {
            ep.terminated = o.terminated;
            return Ok(ep);
        }
        obs = o.obs;
    }
}

/// Episodes from seeds `first_seed .. first_seed + episodes`, in parallel; in seed order.
pub fn evaluate(
    env_id: &str,
    actor: &HostActor,
    first_seed: u64,
    episodes: usize,
) -> Result<Vec<Episode>> {
    (0..episodes as u64)
        .into_par_iter()
        .map(|k| episode(env_id, actor, first_seed + k))
        .collect()
}

/// Mean and population standard deviation of the episodes' returns.
pub fn return_stats(episodes: &[Episode]) -> (f64, f64) {
    let n = episodes.len().max(1) as f64;
    let mean = episodes.iter().map(|e| e.ret).sum::<f64>() / n;
    let var = episodes.iter().map(|e| (e.ret - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
