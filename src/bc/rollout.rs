//! Rollouts: the closed-loop evaluation of a cloned policy, BC's long-horizon evaluation.
//!
//! The deterministic policy acts from the same fixed start states at every evaluation (reset
//! seeds `eval.rollout_seed + k`), for at most `eval.horizon` steps. Besides the return, each
//! visited state is scored by the imitator's action error against the expert's action there:
//! on the expert's own states that error is the BC loss; on the imitator's it grows as the two
//! trajectories drift apart (the compounding error of Ross et al. 2011, which the paper's
//! amplification acts through). The MLP's episodes run in parallel across cores, with host-side
//! forwards of the policy and the expert; the transformer's run in lockstep, one batched forward
//! over every live episode's window per step ([`super::rollout_lockstep`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use burn::tensor::Device;

use super::mlp::MlpPolicy;
use super::normalize::ObsNorm;
use super::policy::BcPolicy;
use crate::rl::environment::{self, Environment};
use crate::rl::policy::HostActor;

/// One rollout episode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rollout {
    pub seed: u64,
    #[serde(rename = "return")]
    pub ret: f64,
    pub length: usize,
    /// Ended unhealthy (terminated) before the horizon, or by a simulator instability.
    pub fell: bool,
    /// Sum over the visited states of the squared action error against the expert, over all
    /// action dimensions.
    #[serde(skip)]
    pub sq_err_sum: f64,
}

/// What a rollout evaluation needs besides the weights.
pub struct RolloutSpec {
    pub env_id: String,
    pub seeds: Vec<u64>,
    pub horizon: usize,
    pub norm: ObsNorm,
    /// The expert whose actions score the visited states (None: no action error).
    pub expert: Option<HostActor>,
}

/// Rolls the policy with `params` out from every seed of `spec`: the MLP's episodes in
/// parallel on the host, the transformer's in lockstep on `device`. Episodes in seed order.
pub fn rollouts(
    spec: &RolloutSpec,
    policy: &BcPolicy,
    params: &[Vec<f32>],
    device: &Device,
) -> Result<Vec<Rollout>> {
    match policy {
        BcPolicy::Mlp(p) => spec
            .seeds
            .par_iter()
            .map(|&seed| episode(spec, p, params, seed))
            .collect(),
        BcPolicy::Transformer(p) => super::rollout_lockstep::rollouts(spec, p, params, device),
    }
}

/// An environment reset for rollout `seed`, its first observation and an empty record.
pub(super) fn start(
    spec: &RolloutSpec,
    seed: u64,
) -> Result<(Box<dyn Environment>, Vec<f64>, Rollout)> {
    let mut env = environment::make(&spec.env_id)?;
    let obs = env
        .reset(seed)
        .with_context(|| format!("{} reset from seed {seed}", spec.env_id))?;
    let r = Rollout {
        seed,
        ret: 0.0,
        length: 0,
        fell: false,
        sq_err_sum: 0.0,
    };
    Ok((env, obs, r))
}

/// Scores `action` at `obs` against the expert, steps `env` with it and records the outcome in
/// `r`. Returns the next observation, or None when the episode has ended (fallen, truncated,
/// unstable, or at the horizon).
pub(super) fn advance(
    spec: &RolloutSpec,
    env: &mut dyn Environment,
    obs: &[f64],
    action: &[f32],
    r: &mut Rollout,
) -> Option<Vec<f64>> {
    if let Some(expert) = &spec.expert {
        let target = expert.mean_action(obs);
        r.sq_err_sum += action
            .iter()
            .zip(&target)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>();
    }
    r.length += 1;
    let Ok(o) = env.step(action) else {
        // MuJoCo went unstable: the policy drove the body somewhere it cannot be simulated.
        // The episode ends there and counts as a fall.
        r.fell = true;
        return None;
    };
    r.ret += o.reward;
    if o.terminated {
        r.fell = true;
        return None;
    }
    (!o.truncated && r.length < spec.horizon).then_some(o.obs)
}

fn episode(
    spec: &RolloutSpec,
    policy: &MlpPolicy,
    params: &[Vec<f32>],
    seed: u64,
) -> Result<Rollout> {
    let (mut env, mut obs, mut r) = start(spec, seed)?;
    if spec.horizon == 0 {
        return Ok(r);
    }
    loop {
        let x = spec.norm.apply(obs.iter().map(|&v| v as f32));
        let action = policy.act_host(params, &x);
        match advance(spec, env.as_mut(), &obs, &action, &mut r) {
            Some(next) => obs = next,
            None => return Ok(r),
        }
    }
}

/// The metrics of one set of rollouts for `metrics.jsonl`, keys suffixed with `_<weights>`:
/// `rollout_return_mean`, `_std` (population), `_min`, `rollout_length_mean`, `rollout_fell`
/// (fraction of episodes that fell) and, with an expert, `rollout_action_err` (mean squared
/// action error per visited state and action dimension, the BC loss's units).
pub fn metrics(
    rs: &[Rollout],
    weights: &str,
    action_dim: usize,
    with_expert: bool,
) -> Vec<(String, f64)> {
    let n = rs.len().max(1) as f64;
    let mean = rs.iter().map(|r| r.ret).sum::<f64>() / n;
    let std = (rs.iter().map(|r| (r.ret - mean).powi(2)).sum::<f64>() / n).sqrt();
    let min = rs.iter().map(|r| r.ret).fold(f64::INFINITY, f64::min);
    let steps: usize = rs.iter().map(|r| r.length).sum();
    let mut out = vec![
        (format!("rollout_return_mean_{weights}"), mean),
        (format!("rollout_return_std_{weights}"), std),
        (format!("rollout_return_min_{weights}"), min),
        (format!("rollout_length_mean_{weights}"), steps as f64 / n),
        (
            format!("rollout_fell_{weights}"),
            rs.iter().filter(|r| r.fell).count() as f64 / n,
        ),
    ];
    if with_expert {
        let err = rs.iter().map(|r| r.sq_err_sum).sum::<f64>()
            / (steps.max(1) * action_dim.max(1)) as f64;
        out.push((format!("rollout_action_err_{weights}"), err));
    }
    out
}

/// One line of `rollouts.jsonl`.
#[derive(Serialize)]
struct Line<'a> {
    step: u64,
    weights: &'a str,
    #[serde(flatten)]
    rollout: &'a Rollout,
}

/// Appends one line per episode to `path` (`rollouts.jsonl`).
pub fn append_log(path: &PathBuf, step: u64, weights: &str, rs: &[Rollout]) -> Result<()> {
    use std::io::Write;
    let mut text = String::new();
    for r in rs {
        text.push_str(&serde_json::to_string(&Line {
            step,
            weights,
            rollout: r,
        })?);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_known_rollouts() {
        let r = |ret: f64, length: usize, fell: bool, e: f64| Rollout {
            seed: 0,
            ret,
            length,
            fell,
            sq_err_sum: e,
        };
        let rs = [r(10.0, 100, false, 2.0), r(20.0, 50, true, 4.0)];
        let m: std::collections::HashMap<String, f64> =
            metrics(&rs, "raw", 2, true).into_iter().collect();
        assert_eq!(m["rollout_return_mean_raw"], 15.0);
        assert_eq!(m["rollout_return_std_raw"], 5.0);
        assert_eq!(m["rollout_return_min_raw"], 10.0);
        assert_eq!(m["rollout_length_mean_raw"], 75.0);
        assert_eq!(m["rollout_fell_raw"], 0.5);
        // 6 / (150 states × 2 dimensions)
        assert!((m["rollout_action_err_raw"] - 0.02).abs() < 1e-12);
        assert!(!metrics(&rs, "ema", 2, false)
            .iter()
            .any(|(k, _)| k.starts_with("rollout_action_err")));
    }
}
