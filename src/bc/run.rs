//! A behaviour-cloning run from the command line (`[task] kind = "bc"`): config, run directory,
//! data, expert, rollout starts, signals, then the same generic trainer as the language model.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::dataset::{self, DatasetInfo, Split};
use super::normalize::ObsNorm;
use super::policy::BcPolicy;
use super::rollout::RolloutSpec;
use super::task::{BcInfo, BcTask, Pairs, RolloutEval};
use crate::config::{BcConfig, BcDataConfig};
use crate::device::choose_device;
use crate::rl::environment;
use crate::rl::policy::ActionMap;
use crate::run::{build_info, new_run_dir_in, write_header, TrainRequest};
use crate::train::checkpoint;
use crate::train::dp::DataParallel;
use crate::train::{train_parallel, RunOutcome, TrainOptions};

/// The BC config a request resolves to (its file, or the run directory's `config.toml` on
/// resume), and the name for a new run directory.
pub fn resolve_bc_request(req: &TrainRequest) -> Result<(BcConfig, String)> {
    let file = match (&req.config, &req.resume) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => dir.join("config.toml"),
        (None, None) => {
            bail!("give --config FILE (e.g. configs/bc/walker2d.toml) or --resume RUN_DIR")
        }
    };
    BcConfig::load(&file, &req.overrides)
}

/// The dataset's expert file: `data.expert`, else the path `dataset.json` names, taken as given
/// and then against the dataset's directory.
fn expert_path(data: &BcDataConfig, info: &DatasetInfo, info_path: &Path) -> Result<PathBuf> {
    if let Some(p) = &data.expert {
        return Ok(PathBuf::from(p));
    }
    let named = PathBuf::from(&info.expert);
    let beside = info_path.parent().map(|d| d.join(&named));
    for p in std::iter::once(named.clone()).chain(beside) {
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "{} names the expert {}, which is not found from here; set data.expert to the expert file",
        info_path.display(),
        info.expert
    )
}

/// Flattens a split into normalised pairs.
pub fn pairs(split: &Split, norm: &ObsNorm) -> Pairs {
    let mut obs: Vec<f32> = split
        .episodes
        .iter()
        .flat_map(|e| e.obs.iter().copied())
        .collect();
    norm.apply_rows(&mut obs);
    Pairs {
        obs,
        actions: split
            .episodes
            .iter()
            .flat_map(|e| e.actions.iter().copied())
            .collect(),
        t: split
            .episodes
            .iter()
            .flat_map(|e| 0..e.len(split.obs_dim) as u32)
            .collect(),
        obs_dim: split.obs_dim,
        action_dim: split.action_dim,
    }
}

/// Runs (or resumes) a BC run and returns how it ended.
pub fn run_bc_training(req: &TrainRequest) -> Result<(PathBuf, RunOutcome)> {
    let (config, name) = resolve_bc_request(req)?;
    // NCCL for several CUDA devices, before the run directory exists (this may start the
    // process again with NCCL on the library path).
    crate::train::dp::preflight(&config.device.plan()?, config.train.batch_size)?;
    let (run_dir, resume_from) = match &req.resume {
        Some(dir) => {
            let saved = BcConfig::from_run_file(&dir.join("config.toml"))?;
            let diffs = config.incompatible_keys(&saved)?;
            if !diffs.is_empty() {
                bail!(
                    "incompatible: resuming {} with a config that changes {}. Only {} may change on resume; start a new run for anything else",
                    dir.display(),
                    diffs.join(", "),
                    crate::config::resumable_text(&BcConfig::RESUMABLE.0, &BcConfig::RESUMABLE.1)
                );
            }
            (dir.clone(), Some(checkpoint::resolve(dir)?))
        }
        None => (
            new_run_dir_in(
                &config.train.out_dir,
                config.train.run_name.as_deref(),
                &name,
            )?,
            None,
        ),
    };
    let _fresh = crate::run::FreshRunDir(resume_from.is_none().then(|| run_dir.clone()));
    crate::fsutil::write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;
    let plan = config.device.plan()?;
    let chosen = choose_device(plan.primary())?;
    // W ≥ 2 data-parallel workers when `device` lists several (worker 0 on `chosen`).
    let mut group = DataParallel::for_plan(&plan, &chosen.device)?;

    let mut header = vec![
        format!("== {} ==", build_info()),
        format!("run directory: {}", run_dir.display()),
        format!("device: {}", chosen.description),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    let finish_header = |mut header: Vec<String>| -> Result<()> {
        match &resume_from {
            Some(p) => header.push(format!("resuming from {}", p.display())),
            None => header.push("starting from scratch".into()),
        }
        header.push("resolved config:".into());
        header.extend(config.to_toml()?.lines().map(|l| format!("  {l}")));
        write_header(&run_dir, &header)
    };
    let opts = |shards: Vec<String>| -> Result<TrainOptions> {
        Ok(TrainOptions {
            run_dir: run_dir.clone(),
            config: config.loop_config()?,
            device: chosen.device.clone(),
            resume_from: resume_from.clone(),
            tokenizer_hash: String::new(),
            train_shards: shards,
            stop: stop.clone(),
        })
    };
    let outcome = match (&config.data, &config.linear) {
        (Some(data), _) => {
            let (mut task, lines, shards) = expert_task(&config, data, &run_dir)?;
            if let Some(ckpt) = &resume_from {
                let saved = checkpoint::read_meta(ckpt)?.train_shards;
                if !saved.is_empty() && saved != shards && !req.accept_data_change {
                    bail!(
                        "incompatible: the BC shards changed since {} was written; restore them, or resume with --accept-data-change",
                        ckpt.display()
                    );
                }
            }
            header.extend(lines);
            finish_header(header)?;
            train_parallel(&mut task, opts(shards)?, group.take())?
        }
        (None, Some(linear)) => {
            let mut task = super::linear::LinearTask::new(
                linear,
                &config.eval,
                config.train.batch_size,
                config.train.seed,
            )?;
            header.extend(task.describe());
            finish_header(header)?;
            train_parallel(&mut task, opts(Vec::new())?, group.take())?
        }
        (None, None) => bail!("a BC config needs [data] or [linear]"),
    };
    Ok((run_dir, outcome))
}

/// The expert-data task: shards, normalisation, policy, expert and rollout starts. Returns the
/// task, header lines for train.log and the data files (recorded in checkpoints).
fn expert_task(
    config: &BcConfig,
    data: &BcDataConfig,
    run_dir: &Path,
) -> Result<(BcTask, Vec<String>, Vec<String>)> {
    let train_split = dataset::read_split(&data.train_glob, data.episodes)?;
    let val_split = dataset::read_split(&data.val_glob, None)?;
    if (val_split.obs_dim, val_split.action_dim) != (train_split.obs_dim, train_split.action_dim) {
        bail!(
            "the validation shards ({}) hold obs/action widths {:?}, the train shards {:?}: they are not the same dataset",
            data.val_glob,
            (val_split.obs_dim, val_split.action_dim),
            (train_split.obs_dim, train_split.action_dim)
        );
    }
    let (info, info_path) = dataset::read_info(&train_split.files)?;
    let env = environment::make(&info.env)
        .with_context(|| format!("the environment of {}", info_path.display()))?;
    if (env.obs_dim(), env.action_dim()) != (train_split.obs_dim, train_split.action_dim) {
        bail!(
            "{} says {}, whose observations and actions are {}- and {}-dimensional, but the shards hold {} and {}",
            info_path.display(),
            info.env,
            env.obs_dim(),
            env.action_dim(),
            train_split.obs_dim,
            train_split.action_dim
        );
    }
    let (low, high) = env.action_bounds();
    let map = ActionMap::from_bounds(&low, &high);

    // Rollout starts must not be states the expert was recorded from.
    let seeds: Vec<u64> = (0..config.eval.rollouts as u64)
        .map(|k| config.eval.rollout_seed + k)
        .collect();
    if let Some(clash) = info.episodes.iter().find(|e| seeds.contains(&e.seed)) {
        bail!(
            "eval.rollout_seed = {}: its {} rollout starts include seed {}, which episode {} of the dataset was collected from; pick a seed range the dataset does not use (it uses {}..{})",
            config.eval.rollout_seed,
            seeds.len(),
            clash.seed,
            clash.episode,
            info.seed,
            info.seed + info.episodes.len() as u64
        );
    }
    let expert_file = expert_path(data, &info, &info_path)?;
    let (expert_env, expert) = crate::rl::expert_file::load(&expert_file)?;
    if expert_env != info.env {
        bail!(
            "the expert {} is for {expert_env}, the data for {}; set data.expert to a {} expert",
            expert_file.display(),
            info.env,
            info.env
        );
    }

    let all_train_obs: Vec<f32> = train_split
        .episodes
        .iter()
        .flat_map(|e| e.obs.iter().copied())
        .collect();
    let norm = ObsNorm::fit(&all_train_obs, train_split.obs_dim, data.obs_std_floor)?;
    let policy = BcPolicy::new(&config.policy, train_split.obs_dim, map);
    let used_returns: Vec<f64> = train_split
        .episodes
        .iter()
        .filter_map(|e| info.episodes.iter().find(|i| i.episode as i64 == e.index))
        .map(|i| i.ret)
        .collect();

    let lines = vec![
        format!("behaviour cloning on {}", info.env),
        policy.describe(&config.policy),
        format!(
            "data: {} train episodes ({} pairs, expert return {:.1} on average) from {}; {} validation episodes ({} pairs)",
            train_split.episodes.len(),
            train_split.samples(),
            used_returns.iter().sum::<f64>() / used_returns.len().max(1) as f64,
            data.train_glob,
            val_split.episodes.len(),
            val_split.samples()
        ),
        format!(
            "observations normalised by the train episodes' mean and deviation (floor {}); {} of {} dimensions at the floor",
            data.obs_std_floor,
            norm.std.iter().filter(|&&s| s as f64 <= data.obs_std_floor).count(),
            norm.std.len()
        ),
        if config.eval.rollout_every == 0 {
            "rollouts: none (eval.rollout_every = 0)".to_string()
        } else {
            format!(
                "rollouts: {} episodes of at most {} steps from reset seeds {}.., every {} steps; action error against {}",
                config.eval.rollouts,
                config.eval.horizon,
                config.eval.rollout_seed,
                config.eval.rollout_every,
                expert_file.display()
            )
        },
    ];
    let train_pairs = pairs(&train_split, &norm);
    let val_pairs = pairs(&val_split, &norm);
    let mut task = BcTask::new(
        policy,
        norm.clone(),
        train_pairs,
        val_pairs,
        config.train.batch_size,
        config.train.seed,
    )
    .with_info(&BcInfo {
        env: info.env.clone(),
        obs_dim: train_split.obs_dim,
        action_dim: train_split.action_dim,
        expert: Some(expert_file.display().to_string()),
    });
    if config.eval.rollout_every > 0 {
        task = task.with_rollouts(RolloutEval {
            spec: RolloutSpec {
                env_id: info.env.clone(),
                seeds,
                horizon: config.eval.horizon,
                norm,
                expert: Some(expert),
            },
            every: config.eval.rollout_every,
            log: run_dir.join("rollouts.jsonl"),
        });
    }
    let mut shards: Vec<String> = train_split
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    shards.extend(val_split.files.iter().map(|p| p.display().to_string()));
    Ok((task, lines, shards))
}
