//! The SAC training loop, following CleanRL's `sac_continuous_action.py` step for step: uniform
//! random actions before `learning_starts`, then actions sampled from the actor; every
//! transition into the replay buffer; from step `learning_starts + 1` on, one update per step on a
//! uniformly sampled minibatch (see [`super::sac::update`]).
//!
//! Randomness: every draw (warm-up actions, acting noise, replay indices, update noise, episode
//! reset seeds) comes from ChaCha8 streams seeded by (seed, step, stream) or (seed, episode), so
//! a resume needs no RNG state. Checkpoints are taken at episode boundaries (the next step
//! resets the environment from a derived seed), which makes resume exact without a snapshot of
//! MuJoCo's internal state: a checkpoint that comes due is taken when the current episode ends,
//! at most 1000 steps later, and SIGINT/SIGTERM likewise finish the episode first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::checkpoint::{self, SacCheckpointMeta};
use super::environment::{self, Environment};
use super::evaluate::{evaluate, return_stats};
use super::policy::HostActor;
use super::replay_buffer::ReplayBuffer;
use super::sac::{normals, update, HostSacState, SacShapes, UpdateNoise, UpdateStats};
use crate::config::ExpertConfig;
use crate::train::metrics::RunLog;
use crate::train::step::step_seed;

/// Random streams of a step (the third argument of [`step_seed`]).
mod stream {
    /// The actor's sampling noise when acting.
    pub const ACT: u64 = 0;
    /// Uniform warm-up actions.
    pub const WARMUP: u64 = 1;
    // 2.. are the update's (see `UpdateNoise::draw`).
    /// Replay indices.
    pub const REPLAY: u64 = 50;
    /// Episode reset seeds (indexed by episode, not step).
    pub const RESET: u64 = 51;
    /// Refilling a buffer (`--refill-buffer`).
    pub const REFILL: u64 = 52;
}

/// Where a run continues from.
pub struct ResumeFrom {
    pub checkpoint: PathBuf,
    /// Start with a buffer refilled by the current policy instead of the saved one.
    pub refill_buffer: bool,
}

pub struct SacRunOptions {
    pub run_dir: PathBuf,
    pub config: ExpertConfig,
    pub device: Device,
    pub resume: Option<ResumeFrom>,
    /// Set by SIGINT/SIGTERM: finish the episode, checkpoint, return.
    pub stop: Arc<AtomicBool>,
    /// Behave as if stopped once this many steps are done (tests of resume).
    pub stop_after: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SacOutcome {
    pub final_step: u64,
    pub interrupted: bool,
    pub last_checkpoint: Option<PathBuf>,
    /// Mean and standard deviation of the last evaluation's returns.
    pub last_eval: Option<(f64, f64)>,
}

/// One row of a SAC run's metrics.jsonl (absent values are omitted).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct SacMetricsRow {
    pub step: u64,
    /// Mean return of the training episodes finished since the previous row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode_return: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_return_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_return_std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qf1_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qf2_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_s: Option<f64>,
}

impl SacMetricsRow {
    fn log_line(&self, total: u64) -> String {
        let mut s = format!("step {}/{total}", self.step);
        let mut add = |k: &str, v: Option<f64>, prec: usize| {
            if let Some(v) = v {
                s += &format!(" | {k} {v:.prec$}");
            }
        };
        add("episode_return", self.episode_return, 1);
        add("eval_return", self.eval_return_mean, 1);
        add("qf1_loss", self.qf1_loss, 4);
        add("actor_loss", self.actor_loss, 3);
        add("alpha", self.alpha, 4);
        add("entropy", self.entropy, 3);
        add("steps/s", self.steps_per_s, 1);
        s
    }
}

fn read(t: &Tensor<1>) -> Result<f64> {
    let v: f32 = t
        .clone()
        .try_into_scalar()
        .map_err(|e| anyhow::anyhow!("cannot read a loss from the device: {e:?}"))?;
    Ok(v as f64)
}

/// The actor of the run's best evaluation so far, kept as an expert file `best.safetensors` in
/// the run directory with `best.json` beside it (SAC's evaluations swing; the last checkpoint
/// need not hold the best policy). Its step may lie after the newest checkpoint.
#[derive(Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct BestActor {
    pub step: u64,
    pub eval_return_mean: f64,
    pub eval_return_std: f64,
    pub eval_seed: u64,
    pub episodes: usize,
}

impl BestActor {
    pub const FILE: &'static str = "best.safetensors";

    fn save(&self, run_dir: &Path, env: &str, actor: &HostActor) -> Result<()> {
        super::expert_file::save(&run_dir.join(Self::FILE), env, actor)?;
        let json = serde_json::to_string_pretty(self)? + "\n";
        crate::fsutil::write_atomic(&run_dir.join("best.json"), json.as_bytes())
    }

    /// The record in `run_dir`, if any.
    pub fn load(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join("best.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Ok(Some(serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is malformed ({e}); delete it to start the record afresh",
                path.display()
            )
        })?))
    }
}

/// The reset seed of training episode `episode` (0-based).
pub fn reset_seed(seed: u64, episode: u64) -> u64 {
    step_seed(seed, episode, stream::RESET)
}

/// The action taken at (0-based) step `global_step`: uniform before `learning_starts`, else
/// sampled from the actor.
fn act(
    cfg: &ExpertConfig,
    actor: &HostActor,
    env: &dyn Environment,
    obs: &[f64],
    global_step: u64,
) -> Vec<f32> {
    let seed = cfg.train.seed;
    if global_step < cfg.sac.learning_starts {
        let (low, high) = env.action_bounds();
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(seed, global_step, stream::WARMUP));
        low.iter()
            .zip(&high)
            .map(|(&l, &h)| rng.random_range(l..=h))
            .collect()
    } else {
        let noise = normals(step_seed(seed, global_step, stream::ACT), env.action_dim());
        actor.sample_action(obs, &noise)
    }
}

/// Fills `buffer` with `count` transitions of `actor`'s stochastic policy, from episodes with
/// their own seeds (the training episodes' counter does not move).
fn refill(
    cfg: &ExpertConfig,
    actor: &HostActor,
    buffer: &mut ReplayBuffer,
    count: usize,
    from_step: u64,
) -> Result<()> {
    let mut env = environment::make(&cfg.env.id)?;
    let seed = step_seed(cfg.train.seed, from_step, stream::REFILL);
    let mut episode = 0u64;
    let mut obs = env.reset(step_seed(seed, episode, stream::RESET))?;
    for k in 0..count as u64 {
        let noise = normals(step_seed(seed, k, stream::ACT), env.action_dim());
        let action = actor.sample_action(&obs, &noise);
        let o = match env.step(&action) {
            Ok(o) => o,
            Err(_) => {
                episode += 1;
                obs = env.reset(step_seed(seed, episode, stream::RESET))?;
                continue;
            }
        };
        buffer.push(&obs, &action, o.reward, &o.obs, o.terminated);
        if o.terminated || o.truncated {
            episode += 1;
            obs = env.reset(step_seed(seed, episode, stream::RESET))?;
        } else {
            obs = o.obs;
        }
    }
    Ok(())
}

/// Trains (or resumes) a SAC agent as configured, writing metrics.jsonl, train.log and
/// checkpoints into `opts.run_dir`. On the CPU the loop runs on a rayon pool worker
/// ([`crate::threads::run_on_active_pool`]): `RAYON_NUM_THREADS` counts the loop's thread, and the
/// other workers spin between the update's parallel matmuls. On a GPU nothing spins.
pub fn train_sac(opts: SacRunOptions) -> Result<SacOutcome> {
    if opts.device == burn::tensor::Device::flex() {
        crate::threads::run_on_active_pool(move || train_sac_here(opts))
    } else {
        train_sac_here(opts)
    }
}

fn train_sac_here(opts: SacRunOptions) -> Result<SacOutcome> {
    let cfg = &opts.config;
    let device = &opts.device;
    let total = cfg.sac.total_steps;
    let ckpt_dir = opts.run_dir.join("checkpoints");
    let mut env = environment::make(&cfg.env.id)?;
    let (low, high) = env.action_bounds();
    let shapes = SacShapes::new(env.obs_dim(), (&low, &high), &cfg.sac);
    let a_dim = shapes.action_dim;
    let config_toml = cfg.to_toml()?;

    let mut log = RunLog::open(&opts.run_dir, 0, total)?;
    let (host, mut step, mut episodes, mut pending, refilled, mut buffer) = match &opts.resume {
        None => (
            HostSacState::init(&shapes, &cfg.sac, cfg.train.seed),
            0u64,
            0u64,
            Vec::new(),
            false,
            ReplayBuffer::new(shapes.obs_dim, a_dim, cfg.sac.buffer_size),
        ),
        Some(r) => {
            // The config first, so that a mismatch is reported as such rather than as a tensor
            // shape.
            let meta = checkpoint::read_meta(&r.checkpoint)?;
            if meta.env != cfg.env.id {
                bail!(
                    "incompatible: {} was trained on {}, the config says env.id = {:?}",
                    r.checkpoint.display(),
                    meta.env,
                    cfg.env.id
                );
            }
            let saved = ExpertConfig::from_run_text(&meta.config, &r.checkpoint)?;
            let diffs = cfg.incompatible_keys(&saved)?;
            if !diffs.is_empty() {
                bail!(
                    "incompatible: resuming {} with a config that changes {}. Only sac.total_steps, train.log_every, train.out_dir, train.run_name, device, eval.* and checkpoint.* may change on resume",
                    r.checkpoint.display(),
                    diffs.join(", ")
                );
            }
            let (meta, host) = checkpoint::load(&r.checkpoint, &shapes)?;
            let mut buffer = ReplayBuffer::new(shapes.obs_dim, a_dim, cfg.sac.buffer_size);
            if r.refill_buffer {
                let actor = HostActor {
                    shape: shapes.actor.clone(),
                    params: host.actor.clone(),
                    map: shapes.map.clone(),
                    bounds: shapes.bounds,
                };
                let count = (meta.step as usize).min(cfg.sac.buffer_size);
                let t = Instant::now();
                refill(cfg, &actor, &mut buffer, count, meta.step)?;
                log.line(&format!(
                    "refilled the replay buffer with {count} transitions of the checkpoint's policy in {:.1} s (--refill-buffer); the run is no longer bit-identical to an uninterrupted one",
                    t.elapsed().as_secs_f64()
                ))?;
            } else {
                let dir = r.checkpoint.parent().unwrap_or(Path::new("."));
                buffer = ReplayBuffer::load(
                    &dir.join(checkpoint::buffer_name(meta.step)),
                    meta.step,
                    shapes.obs_dim,
                    a_dim,
                )?;
            }
            let dropped = crate::train::log_rewind::rewind_jsonl(
                &opts.run_dir.join("metrics.jsonl"),
                meta.step,
            )?;
            log.reopen_metrics(&opts.run_dir)?;
            log.line(&format!(
                "resuming from {} at step {}{}",
                r.checkpoint.display(),
                meta.step,
                if dropped > 0 {
                    format!(" ({dropped} rows after it dropped from metrics.jsonl)")
                } else {
                    String::new()
                }
            ))?;
            if !meta.at_episode_boundary {
                log.line("that checkpoint ended its run mid-episode: a new episode starts here, so this continuation differs from a longer uninterrupted run")?;
            }
            (
                host,
                meta.step,
                meta.episodes,
                meta.pending_returns,
                meta.refilled || r.refill_buffer,
                buffer,
            )
        }
    };
    let mut state = host.upload(&shapes, device)?;
    let mut actor = state.host_actor(&shapes)?;
    log.progress(step);

    let mut obs = env.reset(reset_seed(cfg.train.seed, episodes))?;
    episodes += 1;
    let mut ep_return = 0.0;
    let mut last_stats: Option<UpdateStats> = None;
    let mut last_eval = None;
    let mut last_checkpoint = None;
    let mut ckpt_due = false;
    let mut interrupted = false;
    let mut env_errors = 0usize;
    let mut clock = (Instant::now(), step);
    let stop_requested =
        |step: u64| opts.stop.load(Ordering::Relaxed) || opts.stop_after.is_some_and(|n| step >= n);
    let mut announced_stop = false;
    let mut last_over = true;
    let mut best = BestActor::load(&opts.run_dir)?;

    let save = |step: u64,
                episodes: u64,
                pending: &[f64],
                refilled: bool,
                boundary: bool,
                state: &super::sac::SacState,
                buffer: &ReplayBuffer|
     -> Result<PathBuf> {
        let host = state.download()?;
        let meta = SacCheckpointMeta {
            format: checkpoint::FORMAT.into(),
            version: checkpoint::VERSION,
            step,
            episodes,
            env: cfg.env.id.clone(),
            obs_dim: shapes.obs_dim,
            action_dim: a_dim,
            config: config_toml.clone(),
            actor_steps: host.actor_steps,
            critic_steps: host.critic_steps,
            alpha_steps: host.alpha_steps,
            at_episode_boundary: boundary,
            pending_returns: pending.to_vec(),
            refilled,
        };
        if !host
            .actor
            .iter()
            .chain(&host.critics)
            .all(|t| t.iter().all(|v| v.is_finite()))
        {
            bail!("the networks hold non-finite values at step {step}; not checkpointing them (the last checkpoint stays the newest)");
        }
        // The buffer first: a checkpoint whose buffer is missing is never the newest.
        buffer.save(&ckpt_dir.join(checkpoint::buffer_name(step)), step)?;
        let path = checkpoint::save(&ckpt_dir, &shapes, &host, &meta)?;
        checkpoint::prune(&ckpt_dir, cfg.checkpoint.keep_last)?;
        Ok(path)
    };

    while step < total {
        let global_step = step;
        let action = act(cfg, &actor, env.as_ref(), &obs, global_step);
        let outcome = match env.step(&action) {
            Ok(o) => Some(o),
            Err(e) => {
                env_errors += 1;
                log.line(&format!(
                    "step {}: episode ended by the environment: {e:#}",
                    step + 1
                ))?;
                if env_errors > 100 {
                    bail!("more than 100 environment errors; the last: {e:#}");
                }
                None
            }
        };
        step += 1;
        let mut episode_over = outcome.is_none();
        if let Some(o) = &outcome {
            buffer.push(&obs, &action, o.reward, &o.obs, o.terminated);
            ep_return += o.reward;
            episode_over = o.terminated || o.truncated;
        }
        if global_step > cfg.sac.learning_starts {
            let mut rng =
                ChaCha8Rng::seed_from_u64(step_seed(cfg.train.seed, global_step, stream::REPLAY));
            let indices: Vec<usize> = (0..cfg.sac.batch_size)
                .map(|_| rng.random_range(0..buffer.len))
                .collect();
            let batch = buffer.gather(&indices);
            let policy_updates = if global_step.is_multiple_of(cfg.sac.policy_every) {
                cfg.sac.policy_every
            } else {
                0
            };
            let noise = UpdateNoise::draw(
                cfg.train.seed,
                global_step,
                cfg.sac.batch_size,
                a_dim,
                policy_updates,
            );
            let mut stats = update(&mut state, &shapes, &cfg.sac, &batch, &noise, device);
            if policy_updates > 0 {
                actor = state.host_actor(&shapes)?;
            } else if let Some(prev) = last_stats.take() {
                // The actor and α figures stay those of the latest policy update.
                stats.actor_loss = prev.actor_loss;
                stats.alpha_loss = prev.alpha_loss;
                stats.entropy = prev.entropy;
            }
            last_stats = Some(stats);
        }
        last_over = episode_over;
        if episode_over {
            if outcome.is_some() {
                pending.push(ep_return);
            }
            ep_return = 0.0;
        }

        // Logs and evaluation of this step, before any checkpoint of it.
        let eval_now = step == total || (cfg.eval.every > 0 && step.is_multiple_of(cfg.eval.every));
        if eval_now || step.is_multiple_of(cfg.train.log_every) || step == total {
            let mut row = SacMetricsRow {
                step,
                ..Default::default()
            };
            if !pending.is_empty() {
                row.episode_return = Some(pending.iter().sum::<f64>() / pending.len() as f64);
                pending.clear();
            }
            if let Some(s) = &last_stats {
                row.qf1_loss = Some(read(&s.qf1_loss)?);
                row.qf2_loss = Some(read(&s.qf2_loss)?);
                row.actor_loss = s.actor_loss.as_ref().map(read).transpose()?;
                row.alpha_loss = s.alpha_loss.as_ref().map(read).transpose()?;
                row.entropy = s.entropy.as_ref().map(read).transpose()?;
                row.alpha = Some(read(&state.log_alpha)?.exp());
            }
            let elapsed = clock.0.elapsed().as_secs_f64();
            if step > clock.1 && elapsed > 0.0 {
                row.steps_per_s = Some((step - clock.1) as f64 / elapsed);
            }
            if eval_now && cfg.eval.episodes > 0 {
                let eps = evaluate(&cfg.env.id, &actor, cfg.eval.seed, cfg.eval.episodes)?;
                let (m, s) = return_stats(&eps);
                row.eval_return_mean = Some(m);
                row.eval_return_std = Some(s);
                last_eval = Some((m, s));
                if best.as_ref().is_none_or(|b| m > b.eval_return_mean) {
                    let record = BestActor {
                        step,
                        eval_return_mean: m,
                        eval_return_std: s,
                        eval_seed: cfg.eval.seed,
                        episodes: cfg.eval.episodes,
                    };
                    record.save(&opts.run_dir, &cfg.env.id, &actor)?;
                    best = Some(record);
                }
            }
            let msg = format!(
                "ret {} eval {} {:.0} st/s",
                row.episode_return.map_or("-".into(), |v| format!("{v:.0}")),
                row.eval_return_mean
                    .map_or("-".into(), |v| format!("{v:.0}")),
                row.steps_per_s.unwrap_or(0.0)
            );
            log.json_row(&row, &row.log_line(total), msg)?;
            clock = (Instant::now(), step);
        }
        if step.is_multiple_of(cfg.checkpoint.every) {
            ckpt_due = true;
        }
        let stopping = stop_requested(step);
        if stopping && !announced_stop && step < total {
            announced_stop = true;
            log.line(&format!(
                "stop requested at step {step}: finishing the current episode, then checkpointing"
            ))?;
        }
        if episode_over && step < total {
            if ckpt_due || stopping {
                let path = save(step, episodes, &pending, refilled, true, &state, &buffer)?;
                log.line(&format!("checkpoint {}", path.display()))?;
                last_checkpoint = Some(path);
                ckpt_due = false;
                clock = (Instant::now(), step);
            }
            if stopping {
                interrupted = true;
                log.line(&format!(
                    "stopped at step {step}. Continue with: lmtrain expert train --resume {}",
                    opts.run_dir.display()
                ))?;
                break;
            }
            obs = env.reset(reset_seed(cfg.train.seed, episodes))?;
            episodes += 1;
        } else if let Some(o) = outcome {
            obs = o.obs;
        }
        log.progress(step);
    }
    if !interrupted {
        let path = save(
            step, episodes, &pending, refilled, last_over, &state, &buffer,
        )?;
        log.line(&format!(
            "done at step {step}; final checkpoint {}",
            path.display()
        ))?;
        last_checkpoint = Some(path);
    }
    log.finish();
    Ok(SacOutcome {
        final_step: step,
        interrupted,
        last_checkpoint,
        last_eval,
    })
}
