//! Replays a recording of Gymnasium's own rollout (scripts/make_env_fixtures.py) and compares
//! every value of every step: the observation, the reward, the two flags, and `info` (when the
//! recording has it), plus the observation after reset when the recording has `reset_obs`.
//!
//! Format: `{"env": "Walker2d-v4", "qpos": [...], "qvel": [...], "steps": [{"action": [...],
//! "obs": [...], "reward": r, "terminated": b, "truncated": b}, ...]}`. Numbers are parsed
//! bit-exactly (serde_json's `float_roundtrip`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::{make, State};

/// The largest absolute deviation a replay accepts.
pub const TOLERANCE: f64 = 1e-9;

#[derive(Debug, Deserialize)]
pub struct Recording {
    /// The Gymnasium id.
    pub env: String,
    /// The state right after `reset(seed)`.
    pub qpos: Vec<f64>,
    pub qvel: Vec<f64>,
    /// The observation `reset` returned (optional).
    #[serde(default)]
    pub reset_obs: Option<Vec<f64>>,
    pub steps: Vec<RecordedStep>,
}

#[derive(Debug, Deserialize)]
pub struct RecordedStep {
    pub action: Vec<f64>,
    pub obs: Vec<f64>,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    /// Gymnasium's `info` (optional).
    #[serde(default)]
    pub info: Option<BTreeMap<String, f64>>,
}

/// What a replay found.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub env: String,
    pub steps: usize,
    /// The largest absolute deviation over every compared value (0 when all are identical).
    pub max_deviation: f64,
    /// Where the largest deviation is, e.g. `step 12 obs[3]`.
    pub worst: String,
    /// Differences that are not a number's deviation: flags, lengths, missing info keys.
    pub mismatches: Vec<String>,
}

impl ReplayReport {
    /// Within [`TOLERANCE`] everywhere, and every flag and length equal.
    pub fn passed(&self) -> bool {
        self.max_deviation <= TOLERANCE && self.mismatches.is_empty()
    }

    fn compare(&mut self, what: impl FnOnce() -> String, ours: f64, theirs: f64) {
        let dev = if ours == theirs || (ours.is_nan() && theirs.is_nan()) {
            0.0
        } else {
            // A NaN on one side only, or an infinity, counts as infinitely far.
            let d = (ours - theirs).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        };
        if dev > self.max_deviation {
            self.max_deviation = dev;
            self.worst = what();
        }
    }

    fn compare_all(&mut self, what: &str, ours: &[f64], theirs: &[f64]) {
        if ours.len() != theirs.len() {
            self.mismatches.push(format!(
                "{what}: lmtrain has {} values, the recording {}",
                ours.len(),
                theirs.len()
            ));
        }
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            self.compare(|| format!("{what}[{i}]"), *a, *b);
        }
    }
}

/// Reads a recording, with the file named in any error.
pub fn load(path: &Path) -> Result<Recording> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read recording {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a recording (expected {{\"env\", \"qpos\", \"qvel\", \"steps\": \
             [{{\"action\", \"obs\", \"reward\", \"terminated\", \"truncated\"}}]}}, as \
             scripts/make_env_fixtures.py writes)",
            path.display()
        )
    })
}

/// An action as the float32 values Gymnasium's action space holds; a value that is not exactly a
/// float32 means the recording was not made with that space, so it is an error.
fn action_f32(values: &[f64], step: usize) -> Result<Vec<f32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let a = v as f32;
            if f64::from(a) != v && !v.is_nan() {
                bail!("step {step}: action[{i}] = {v} is not a float32 value (Gymnasium's action space is float32)");
            }
            Ok(a)
        })
        .collect()
}

/// Replays `rec` on lmtrain's environment and compares every step.
pub fn replay(rec: &Recording) -> Result<ReplayReport> {
    let mut env = make(&rec.env)?;
    let mut report = ReplayReport {
        env: rec.env.clone(),
        steps: rec.steps.len(),
        max_deviation: 0.0,
        worst: String::new(),
        mismatches: Vec::new(),
    };
    let state = State {
        qpos: rec.qpos.clone(),
        qvel: rec.qvel.clone(),
    };
    let obs = env
        .reset_to(&state)
        .context("the recording's start state does not fit the environment")?;
    if let Some(reset_obs) = &rec.reset_obs {
        report.compare_all("reset obs", &obs, reset_obs);
    }
    for (t, s) in rec.steps.iter().enumerate() {
        let action = action_f32(&s.action, t)?;
        let step = env.step(&action).with_context(|| format!("step {t}"))?;
        report.compare_all(&format!("step {t} obs"), &step.obs, &s.obs);
        report.compare(|| format!("step {t} reward"), step.reward, s.reward);
        if step.terminated != s.terminated {
            report.mismatches.push(format!(
                "step {t}: terminated is {} here, {} in the recording",
                step.terminated, s.terminated
            ));
        }
        if step.truncated != s.truncated {
            report.mismatches.push(format!(
                "step {t}: truncated is {} here, {} in the recording",
                step.truncated, s.truncated
            ));
        }
        if let Some(info) = &s.info {
            for (key, &theirs) in info {
                match step.info.iter().find(|(k, _)| k == key) {
                    Some(&(_, ours)) => {
                        report.compare(|| format!("step {t} info.{key}"), ours, theirs)
                    }
                    None => report
                        .mismatches
                        .push(format!("step {t}: info has no {key:?} here")),
                }
            }
        }
    }
    Ok(report)
}

/// Loads and replays the recording at `path`.
pub fn replay_file(path: &Path) -> Result<ReplayReport> {
    let rec = load(path)?;
    replay(&rec).with_context(|| format!("replaying {}", path.display()))
}
