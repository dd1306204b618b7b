//! The expert (SAC) config: `lmtrain expert train --config configs/experts/<env>.toml`.
//!
//! One TOML file per environment with the tables `[env]`, `[sac]`, `[eval]`, `[train]` and
//! `[checkpoint]`; unknown keys are errors. The `[sac]` defaults are CleanRL's
//! `sac_continuous_action.py` (Haarnoja et al. 2018, with CleanRL's delayed actor updates).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The whole expert-training configuration, as written to `config.toml` in the run directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpertConfig {
    /// "auto" | "cpu" | "cuda" | "cuda:N" (the LM's device choice).
    #[serde(default = "default_device")]
    pub device: String,
    pub env: EnvConfig,
    pub sac: SacConfig,
    #[serde(default)]
    pub eval: SacEvalConfig,
    #[serde(default)]
    pub train: SacTrainConfig,
    #[serde(default)]
    pub checkpoint: SacCheckpointConfig,
}

fn default_device() -> String {
    "auto".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// Gymnasium id: "Walker2d-v4", "Hopper-v4", "HalfCheetah-v4", "Ant-v4", "Humanoid-v4", or
    /// the probe "PointMass-v0" (no MuJoCo).
    pub id: String,
}

/// SAC's hyperparameters (CleanRL's names in comments where they differ).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SacConfig {
    /// Environment steps in all (`total_timesteps`).
    pub total_steps: u64,
    /// Uniform random actions and no updates before this step.
    #[serde(default = "d_learning_starts")]
    pub learning_starts: u64,
    /// Replay buffer capacity in transitions.
    #[serde(default = "d_buffer_size")]
    pub buffer_size: usize,
    /// Transitions per update.
    #[serde(default = "d_batch_size")]
    pub batch_size: usize,
    /// Discount γ.
    #[serde(default = "d_gamma")]
    pub gamma: f64,
    /// Polyak τ for the target critics, applied after every update.
    #[serde(default = "d_tau")]
    pub tau: f64,
    /// Adam learning rate of the actor.
    #[serde(default = "d_policy_lr")]
    pub policy_lr: f64,
    /// Adam learning rate of the critics, and of log α.
    #[serde(default = "d_q_lr")]
    pub q_lr: f64,
    /// Every this many steps, this many actor and α updates (`policy_frequency`).
    #[serde(default = "d_policy_every")]
    pub policy_every: u64,
    /// Hidden layer widths of the actor and of each critic (ReLU).
    #[serde(default = "d_hidden")]
    pub hidden: Vec<usize>,
    /// Bounds of the actor's log standard deviation (tanh-rescaled into them).
    #[serde(default = "d_log_std_min")]
    pub log_std_min: f64,
    #[serde(default = "d_log_std_max")]
    pub log_std_max: f64,
    /// Optimise log α towards the target entropy −|A|; else α stays `alpha`.
    #[serde(default = "d_true")]
    pub autotune: bool,
    /// The entropy coefficient α when `autotune` is off (log α starts at 0, α = 1, when on).
    #[serde(default = "d_alpha")]
    pub alpha: f64,
}

fn d_learning_starts() -> u64 {
    5000
}
fn d_buffer_size() -> usize {
    1_000_000
}
fn d_batch_size() -> usize {
    256
}
fn d_gamma() -> f64 {
    0.99
}
fn d_tau() -> f64 {
    0.005
}
fn d_policy_lr() -> f64 {
    3e-4
}
fn d_q_lr() -> f64 {
    1e-3
}
fn d_policy_every() -> u64 {
    2
}
fn d_hidden() -> Vec<usize> {
    vec![256, 256]
}
fn d_log_std_min() -> f64 {
    -5.0
}
fn d_log_std_max() -> f64 {
    2.0
}
fn d_true() -> bool {
    true
}
fn d_alpha() -> f64 {
    0.2
}

/// Deterministic evaluation (tanh of the mean, scaled) on fixed episode seeds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SacEvalConfig {
    /// Steps between evaluations; 0 turns them off (the last step is evaluated all the same).
    pub every: u64,
    /// Episodes per evaluation, from seeds `seed`, `seed + 1`, ….
    pub episodes: usize,
    /// The first evaluation seed (distinct from the training episodes' derived seeds).
    pub seed: u64,
}

impl Default for SacEvalConfig {
    fn default() -> Self {
        Self {
            every: 10_000,
            episodes: 10,
            seed: 1_000_000,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SacTrainConfig {
    /// Every random draw is derived from (seed, step), so no RNG state needs saving.
    pub seed: u64,
    /// Each run gets its own directory under this one.
    pub out_dir: String,
    /// Name of the run directory; default: the config file's stem and a timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    /// Steps between rows of metrics.jsonl and lines of train.log.
    pub log_every: u64,
}

impl Default for SacTrainConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            out_dir: "runs/experts".into(),
            run_name: None,
            log_every: 1000,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SacCheckpointConfig {
    /// A checkpoint is due every this many steps and taken at the next episode boundary.
    pub every: u64,
    /// Checkpoints kept (the replay buffer is kept for the newest only).
    pub keep_last: usize,
}

impl Default for SacCheckpointConfig {
    fn default() -> Self {
        Self {
            every: 20_000,
            keep_last: 2,
        }
    }
}

impl ExpertConfig {
    /// Semantic checks that serde cannot express; each message names the key and its range.
    pub fn validate(&self) -> Result<()> {
        use super::ranges::{check, check_int};
        let s = &self.sac;
        check_int("sac.total_steps", s.total_steps)?;
        check_int("sac.batch_size", s.batch_size as u64)?;
        check("sac.gamma", s.gamma)?;
        check("sac.tau", s.tau)?;
        check("sac.policy_lr", s.policy_lr)?;
        check("sac.q_lr", s.q_lr)?;
        check_int("sac.policy_every", s.policy_every)?;
        check("sac.alpha", s.alpha)?;
        check("sac.log_std_min", s.log_std_min)?;
        check("sac.log_std_max", s.log_std_max)?;
        if s.buffer_size < s.batch_size {
            bail!(
                "sac.buffer_size = {} must be ≥ sac.batch_size = {}",
                s.buffer_size,
                s.batch_size
            );
        }
        if s.learning_starts < s.batch_size as u64 {
            bail!(
                "sac.learning_starts = {} must be ≥ sac.batch_size = {} (the first update samples a full batch)",
                s.learning_starts,
                s.batch_size
            );
        }
        if s.hidden.is_empty() || s.hidden.contains(&0) {
            bail!(
                "sac.hidden = {:?} must list at least one width, each ≥ 1",
                s.hidden
            );
        }
        if !(s.log_std_min.is_finite()
            && s.log_std_max.is_finite()
            && s.log_std_min < s.log_std_max)
        {
            bail!(
                "sac.log_std_min = {} must be below sac.log_std_max = {} (both finite)",
                s.log_std_min,
                s.log_std_max
            );
        }
        if self.eval.every > 0 && self.eval.episodes == 0 {
            bail!("eval.episodes must be ≥ 1 when eval.every > 0");
        }
        if self.train.log_every == 0 {
            bail!("train.log_every must be ≥ 1");
        }
        if self.checkpoint.every == 0 || self.checkpoint.keep_last == 0 {
            bail!("checkpoint.every and checkpoint.keep_last must be ≥ 1");
        }
        let known = [
            "Walker2d-v4",
            "Hopper-v4",
            "HalfCheetah-v4",
            "Ant-v4",
            "Humanoid-v4",
            "PointMass-v0",
        ];
        if !known.contains(&self.env.id.as_str()) {
            bail!(
                "env.id = {:?} is not an environment lmtrain has; use one of {}",
                self.env.id,
                known.join(", ")
            );
        }
        crate::device::DeviceChoice::parse(&self.device)?;
        Ok(())
    }

    /// Loads `file`, applies `--set` overrides, validates, and makes `train.out_dir` absolute
    /// against the file's directory.
    pub fn load(file: &Path, overrides: &[String]) -> Result<(Self, String)> {
        let (mut config, name): (Self, String) = super::load::load_typed(file, overrides)?;
        config.validate().with_context(|| {
            format!("in config file {} (after --set overrides)", file.display())
        })?;
        config.train.out_dir = super::load::resolve_against_file(file, &config.train.out_dir)?;
        Ok((config, name))
    }

    /// Parses the copy a run directory holds (paths already absolute).
    pub fn from_run_text(text: &str, origin: &Path) -> Result<Self> {
        let config: Self =
            toml::from_str(text).with_context(|| format!("in {}", origin.display()))?;
        config
            .validate()
            .with_context(|| format!("in {}", origin.display()))?;
        Ok(config)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot serialize the expert config")
    }

    /// Keys whose values differ, excluding those a resume may change: `sac.total_steps`,
    /// `train.log_every`, `train.out_dir`, `train.run_name`, `device`, `eval.*` and `checkpoint.*`.
    pub fn incompatible_keys(&self, other: &Self) -> Result<Vec<String>> {
        super::load::incompatible_keys(
            self,
            other,
            &[
                "sac.total_steps",
                "train.log_every",
                "train.out_dir",
                "train.run_name",
                "device",
            ],
            &["eval", "checkpoint"],
        )
    }
}
