//! `lmtrain expert ...`: train SAC experts, export and evaluate them, collect their datasets,
//! and time the SAC step.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::checkpoint;
use super::evaluate::{evaluate, return_stats};
use super::expert_file::{self, ExpertCard};
use super::sac::SacShapes;
use super::train_loop::{train_sac, ResumeFrom, SacRunOptions};
use crate::config::ExpertConfig;

#[derive(Subcommand, Debug)]
pub enum ExpertCommand {
    /// Train a SAC expert (CleanRL's sac_continuous_action.py loop) on one environment.
    ///
    /// On the CPU it uses RAYON_NUM_THREADS threads (default: one per core); with two or more,
    /// the extra threads spin while the run computes (napping after 2 ms without work), as
    /// OpenMP's threads do under PyTorch, so give each of several runs at once
    /// RAYON_NUM_THREADS=1.
    Train(ExpertTrainArgs),
    /// Write a SAC run's actor as an expert file (<out>.safetensors) and its card (<out>.json),
    /// evaluating it deterministically for the card.
    Export {
        /// A SAC checkpoint file, or a run directory (its newest checkpoint).
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        /// The expert file to write, e.g. data/experts/walker2d.safetensors.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Evaluation episodes for the card.
        #[arg(long, default_value_t = 10, value_parser = crate::config::ranges::flag_usize("expert export --episodes"))]
        episodes: usize,
        /// The first evaluation seed of the card (default: the run's eval.seed + 1000000, seeds
        /// that did not pick the best evaluation, so the card is not an optimistic maximum).
        #[arg(long)]
        seed: Option<u64>,
        /// Export the actor of the run's best evaluation (RUN_DIR/best.safetensors) instead of
        /// the checkpoint's; --checkpoint must then be the run directory.
        #[arg(long)]
        best: bool,
    },
    /// Print an expert's deterministic returns on evaluation episodes.
    Eval {
        /// An expert file (data/experts/<env>.safetensors).
        #[arg(long, value_name = "FILE")]
        expert: PathBuf,
        #[arg(long, default_value_t = 10, value_parser = crate::config::ranges::flag_usize("expert eval --episodes"))]
        episodes: usize,
        /// The first episode's reset seed (default: the card's eval_seed, else 1000000).
        #[arg(long)]
        seed: Option<u64>,
        /// Also write each episode's start state, return and first actions as JSON here.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Roll an expert out into a parquet dataset (train and validation shards, dataset.json).
    Collect {
        /// The expert file to roll out (data/experts/<env>.safetensors).
        #[arg(long, value_name = "FILE")]
        expert: PathBuf,
        /// Train episodes.
        #[arg(long, default_value_t = 100, value_parser = crate::config::ranges::flag_usize("expert collect --episodes"))]
        episodes: usize,
        /// Validation episodes (after the train ones, from the following seeds).
        #[arg(long = "val-episodes", default_value_t = 10)]
        val_episodes: usize,
        /// Episode k starts from reset seed SEED + k.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The dataset directory to write (train-00000-of-00001.parquet,
        /// validation-00000-of-00001.parquet, dataset.json; files of those names are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Time SAC's steps (environment step and update) after the warm-up and print a RESULT line
    /// (scripts/sac_bench.sh runs it beside CleanRL's PyTorch SAC).
    Bench {
        /// Gymnasium id of the environment.
        #[arg(long, default_value = "Walker2d-v4")]
        env: String,
        /// Uniform random steps before the timed window (no updates during them).
        #[arg(long = "learning-starts", default_value_t = 5000)]
        learning_starts: u64,
        /// Timed steps, each with one update.
        #[arg(long, default_value_t = 2000, value_parser = crate::config::ranges::flag_u64("expert bench --steps"))]
        steps: u64,
        /// Random seed of the run (all draws derive from it).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// "cpu", "auto", "cuda" or "cuda:N".
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Args, Debug)]
pub struct ExpertTrainArgs {
    /// TOML config (configs/experts/<env>.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override a config value; repeatable (e.g. --set sac.total_steps=300000).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved config and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Continue a run: its directory (newest checkpoint and its replay buffer), or with
    /// --refill-buffer a checkpoint file (then a new run directory is made).
    #[arg(long, value_name = "PATH")]
    pub resume: Option<PathBuf>,
    /// Resume from networks, optimizers and α alone, refilling the replay buffer with the
    /// checkpoint's policy (for a checkpoint carried to another machine without its buffer).
    #[arg(long, requires = "resume")]
    pub refill_buffer: bool,
}

pub fn run(command: ExpertCommand) -> Result<()> {
    match command {
        ExpertCommand::Train(args) => train(args),
        ExpertCommand::Export {
            checkpoint,
            out,
            episodes,
            seed,
            best,
        } => export(&checkpoint, &out, episodes, seed, best),
        ExpertCommand::Eval {
            expert,
            episodes,
            seed,
            trace,
        } => eval(&expert, episodes, seed, trace.as_deref()),
        ExpertCommand::Collect {
            expert,
            episodes,
            val_episodes,
            seed,
            out,
        } => {
            let s = super::collect::collect(&expert, episodes, val_episodes, seed, &out)?;
            println!(
                "collected {} train steps ({episodes} episodes, mean return {:.1}) and {} validation steps ({val_episodes} episodes) into {}",
                s.train_steps,
                s.train_return_mean,
                s.val_steps,
                out.display()
            );
            Ok(())
        }
        ExpertCommand::Bench {
            env,
            learning_starts,
            steps,
            seed,
            device,
        } => {
            let r = super::bench::bench(&env, learning_starts, steps, seed, &device)?;
            println!(
                "RESULT impl=lmtrain env={env} learning_starts={learning_starts} steps={steps} seconds={:.3} steps_per_s={:.2}",
                r.seconds,
                steps as f64 / r.seconds
            );
            Ok(())
        }
    }
}

/// A checkpoint file, or a directory's newest SAC checkpoint.
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let dir = if path.join("checkpoints").is_dir() {
        path.join("checkpoints")
    } else {
        path.to_path_buf()
    };
    if !dir.is_dir() {
        bail!(
            "{} does not exist: give a SAC checkpoint file or a run directory",
            path.display()
        );
    }
    checkpoint::list(&dir)?.pop().with_context(|| {
        format!(
            "{} holds no SAC checkpoint (sac-*.safetensors)",
            path.display()
        )
    })
}

fn train(args: ExpertTrainArgs) -> Result<()> {
    let (config, name, run_dir, resume) = match (&args.resume, &args.config) {
        (Some(path), file) => {
            let ckpt = resolve_checkpoint(path)?;
            let meta = checkpoint::read_meta(&ckpt)?;
            let (mut config, name) = match file {
                Some(f) => ExpertConfig::load(f, &args.set)?,
                None => {
                    // The stored config, with the overrides applied on top.
                    let tmp = std::env::temp_dir()
                        .join(format!("lmtrain-resume-{}.toml", std::process::id()));
                    std::fs::write(&tmp, &meta.config)?;
                    let r = ExpertConfig::load(&tmp, &args.set);
                    let _ = std::fs::remove_file(&tmp);
                    let (c, _) = r?;
                    (c, meta.env.to_lowercase())
                }
            };
            let in_run_dir = path.is_dir();
            if !in_run_dir && !args.refill_buffer {
                bail!("--resume {} is a checkpoint file: resume a run directory, or add --refill-buffer to continue from the file alone", path.display());
            }
            let run_dir = if in_run_dir {
                path.clone()
            } else {
                // The stored out_dir is the original machine's: unless --set says otherwise, the
                // continued run goes under runs/experts here.
                if file.is_none()
                    && !args
                        .set
                        .iter()
                        .any(|s| s.trim_start().starts_with("train.out_dir"))
                {
                    config.train.out_dir = std::env::current_dir()?
                        .join("runs/experts")
                        .display()
                        .to_string();
                }
                crate::run::new_run_dir_in(
                    &config.train.out_dir,
                    config.train.run_name.as_deref(),
                    &format!("{name}-continued"),
                )?
            };
            (
                config,
                name,
                run_dir,
                Some(ResumeFrom {
                    checkpoint: ckpt,
                    refill_buffer: args.refill_buffer,
                }),
            )
        }
        (None, Some(file)) => {
            let (config, name) = ExpertConfig::load(file, &args.set)?;
            if args.dump_config {
                print!("{}", config.to_toml()?);
                return Ok(());
            }
            let dir = crate::run::new_run_dir_in(
                &config.train.out_dir,
                config.train.run_name.as_deref(),
                &name,
            )?;
            (config, name, dir, None)
        }
        (None, None) => {
            bail!("give --config FILE (e.g. configs/experts/walker2d.toml) or --resume RUN_DIR")
        }
    };
    if args.dump_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let _ = name;
    let chosen = crate::device::choose_device(crate::device::DeviceChoice::parse(&config.device)?)?;
    crate::fsutil::write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;
    crate::run::write_header(
        &run_dir,
        &[
            crate::run::build_info(),
            format!(
                "SAC expert on {} | run directory {}",
                config.env.id,
                run_dir.display()
            ),
            format!("device: {}", chosen.description),
            crate::threads::describe(),
            "resolved config:".to_string(),
        ]
        .into_iter()
        .chain(config.to_toml()?.lines().map(|l| format!("  {l}")))
        .collect::<Vec<_>>(),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    let outcome = train_sac(SacRunOptions {
        run_dir: run_dir.clone(),
        config,
        device: chosen.device,
        resume,
        stop,
        stop_after: None,
    })?;
    if let Some((m, s)) = outcome.last_eval {
        eprintln!("last evaluation: return {m:.1} ± {s:.1}");
    }
    eprintln!("run directory: {}", run_dir.display());
    Ok(())
}

fn export(ckpt: &Path, out: &Path, episodes: usize, seed: Option<u64>, best: bool) -> Result<()> {
    let path = resolve_checkpoint(ckpt)?;
    let meta = checkpoint::read_meta(&path)?;
    let config = ExpertConfig::from_run_text(&meta.config, &path)?;
    let env = super::environment::make(&meta.env)?;
    let (low, high) = env.action_bounds();
    let shapes = SacShapes::new(env.obs_dim(), (&low, &high), &config.sac);
    let (actor, steps) = if best {
        let record = super::train_loop::BestActor::load(ckpt)?.with_context(|| {
            format!(
                "{} has no best.json: --best needs the run directory of a run that evaluated",
                ckpt.display()
            )
        })?;
        let (_, actor) = expert_file::load(&ckpt.join(super::train_loop::BestActor::FILE))?;
        (actor, record.step)
    } else {
        let (_, host) = checkpoint::load(&path, &shapes)?;
        let actor = super::policy::HostActor {
            shape: shapes.actor.clone(),
            params: host.actor,
            map: shapes.map.clone(),
            bounds: shapes.bounds,
        };
        (actor, meta.step)
    };
    let eval_seed = seed.unwrap_or(config.eval.seed + 1_000_000);
    let eps = evaluate(&meta.env, &actor, eval_seed, episodes)?;
    let (mean, std) = return_stats(&eps);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    expert_file::save(out, &meta.env, &actor)?;
    let card = ExpertCard {
        env: meta.env.clone(),
        config: meta.config.clone(),
        steps,
        seed: config.train.seed,
        returns: eps.iter().map(|e| e.ret).collect(),
        eval_seed,
        return_mean: mean,
        return_std: std,
        refilled: meta.refilled,
    };
    expert_file::save_card(out, &card)?;
    println!(
        "wrote {} and its card: {} at step {steps}, return {mean:.1} ± {std:.1} over {episodes} episodes",
        out.display(),
        meta.env,
    );
    Ok(())
}

fn eval(expert: &Path, episodes: usize, seed: Option<u64>, trace: Option<&Path>) -> Result<()> {
    let (env, actor) = expert_file::load(expert)?;
    let first = seed.unwrap_or_else(|| {
        expert_file::load_card(expert)
            .map(|c| c.eval_seed)
            .unwrap_or(1_000_000)
    });
    let eps = evaluate(&env, &actor, first, episodes)?;
    for e in &eps {
        println!(
            "episode seed={} return={:.3} length={}{}",
            e.seed,
            e.ret,
            e.length,
            if e.terminated { " fell" } else { "" }
        );
    }
    let (m, s) = return_stats(&eps);
    println!(
        "RESULT env={env} episodes={episodes} seed={first} return_mean={m:.3} return_std={s:.3}"
    );
    if let Some(path) = trace {
        let json = serde_json::json!({ "env": env, "episodes": eps });
        crate::fsutil::write_atomic(path, (serde_json::to_string(&json)? + "\n").as_bytes())?;
    }
    Ok(())
}
