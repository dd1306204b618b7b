//! `lmtrain rollout --checkpoint RUN_DIR [--ema] --episodes N`: a BC checkpoint's policy rolled
//! out outside training, from the checkpoint alone (its config, observation normalisation and
//! recorded environment); the expert it recorded scores the action error when still present.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::normalize::ObsNorm;
use super::policy::BcPolicy;
use super::rollout::{self, Rollout, RolloutSpec};
use super::task::BcInfo;
use crate::config::{BcConfig, TaskKind};
use crate::rl::environment;
use crate::rl::policy::ActionMap;
use crate::train::checkpoint;

/// What to roll out.
pub struct RolloutRequest<'a> {
    pub checkpoint: &'a Path,
    pub ema: bool,
    /// Episodes; default the run's `eval.rollouts`.
    pub episodes: Option<usize>,
    /// First reset seed; default the run's `eval.rollout_seed`.
    pub seed: Option<u64>,
    /// Steps per episode at most; default the run's `eval.horizon`.
    pub horizon: Option<usize>,
}

/// The episodes, the metrics (as in metrics.jsonl, keys suffixed `_raw` or `_ema`) and a line
/// describing the source.
pub struct RolloutReport {
    pub episodes: Vec<Rollout>,
    pub metrics: Vec<(String, f64)>,
    pub description: String,
    /// Wall time of the rollouts alone (loading excluded), seconds.
    pub seconds: f64,
}

/// A BC checkpoint's policy, ready to evaluate outside training.
pub struct LoadedPolicy {
    pub path: std::path::PathBuf,
    pub step: u64,
    pub config: BcConfig,
    pub info: BcInfo,
    pub policy: BcPolicy,
    /// The raw or EMA weights, as asked.
    pub params: crate::model::HostParams,
    pub norm: ObsNorm,
    /// The expert the checkpoint recorded, when its file is still there.
    pub expert: Option<crate::rl::policy::HostActor>,
}

/// Loads a BC checkpoint (a file or a run directory's newest intact one), raw or EMA weights.
/// Errors name the file and say what to use instead for a language-model checkpoint.
pub fn load_policy(checkpoint_path: &Path, ema: bool) -> Result<LoadedPolicy> {
    let path = checkpoint::resolve(checkpoint_path)?;
    let meta = checkpoint::read_meta(&path)?;
    if crate::config::kind_of_text(&meta.config) != TaskKind::Bc {
        bail!(
            "{} is a language-model checkpoint: rollout evaluates behaviour-cloning policies; sample from it with `lmtrain sample` (its landscape probe is `lmtrain landscape --metric …`)",
            path.display()
        );
    }
    let config: BcConfig = toml::from_str(&meta.config)
        .with_context(|| format!("{}: the stored BC config is unreadable", path.display()))?;
    if config.linear.is_some() {
        bail!(
            "{} is the linear-system testbed: it has no environment to roll out in; its rollout costs are in the run's metrics.jsonl",
            path.display()
        );
    }
    let info: BcInfo = match serde_json::from_value(meta.task_info.clone()) {
        Ok(info) => info,
        // Early version-3 files recorded no task info: the dataset still says the environment.
        Err(e) => info_from_data(&config).with_context(|| {
            format!(
                "{}: the checkpoint does not record its environment ({e}), and its data does not say",
                path.display()
            )
        })?,
    };
    let env = environment::make(&info.env)?;
    let (low, high) = env.action_bounds();
    let policy = BcPolicy::new(
        &config.policy,
        info.obs_dim,
        ActionMap::from_bounds(&low, &high),
    );
    let (meta, state) = checkpoint::load(&path, Some(policy.specs()))?;
    let params = if ema {
        state.ema.ok_or_else(|| {
            anyhow!(
                "{} has no EMA weights (ema.enabled was false); drop --ema",
                path.display()
            )
        })?
    } else {
        state.params
    };
    let norm = ObsNorm::from_buffers(&state.buffers)
        .with_context(|| format!("reading {}", path.display()))?;
    let expert = match info.expert.as_deref().map(Path::new) {
        Some(p) if p.is_file() => Some(crate::rl::expert_file::load(p)?.1),
        _ => None,
    };
    Ok(LoadedPolicy {
        path,
        step: meta.step,
        config,
        info,
        policy,
        params,
        norm,
        expert,
    })
}

pub fn rollout_checkpoint(req: &RolloutRequest) -> Result<RolloutReport> {
    let LoadedPolicy {
        path,
        step,
        config,
        info,
        policy,
        params,
        norm,
        expert,
    } = load_policy(req.checkpoint, req.ema)?;
    let first = req.seed.unwrap_or(config.eval.rollout_seed);
    let spec = RolloutSpec {
        env_id: info.env.clone(),
        seeds: (0..req.episodes.unwrap_or(config.eval.rollouts) as u64)
            .map(|k| first + k)
            .collect(),
        horizon: req.horizon.unwrap_or(config.eval.horizon),
        norm,
        expert,
    };
    let weights = if req.ema { "ema" } else { "raw" };
    let start = std::time::Instant::now();
    let episodes = rollout::rollouts(&spec, &policy, &params, &burn::tensor::Device::flex())?;
    let seconds = start.elapsed().as_secs_f64();
    let metrics = rollout::metrics(&episodes, weights, info.action_dim, spec.expert.is_some());
    Ok(RolloutReport {
        episodes,
        metrics,
        seconds,
        description: format!(
            "{} weights of {} (step {}), {} from reset seeds {first}.., horizon {}",
            if req.ema { "EMA" } else { "raw" },
            path.display(),
            step,
            info.env,
            spec.horizon
        ),
    })
}

/// The environment and dimensions from the run's data (its `dataset.json`).
fn info_from_data(config: &BcConfig) -> Result<BcInfo> {
    let data = config
        .data
        .as_ref()
        .ok_or_else(|| anyhow!("the linear testbed has no environment to roll out in"))?;
    let files = crate::data::shards::resolve_glob(&data.train_glob, Path::new("/"))?;
    let (info, _) = super::dataset::read_info(&files)?;
    let env = environment::make(&info.env)?;
    Ok(BcInfo {
        env: info.env,
        obs_dim: env.obs_dim(),
        action_dim: env.action_dim(),
        expert: data.expert.clone(),
    })
}
