//! A language-model training run from the command line: config, run directory, device, data,
//! signals, then the generic trainer.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::config::{load_config, Config};
use crate::device::choose_device;
use crate::lm::gen_eval::{GenerationEval, Judge};
use crate::lm::{prepare_run_data, LmTask};
use crate::model::params::count;
use crate::model::{Gpt, GptShape};
use crate::train::checkpoint;
use crate::train::dp::DataParallel;
use crate::train::{train_parallel, RunOutcome, TrainOptions};

/// Build identity for logs: crate version, git commit and burn version (set by build.rs).
pub fn build_info() -> String {
    format!(
        "lmtrain {} (git {}) | burn {}",
        env!("CARGO_PKG_VERSION"),
        env!("LMTRAIN_GIT_COMMIT"),
        env!("LMTRAIN_BURN_VERSION")
    )
}

/// What the user asked for.
pub struct TrainRequest {
    pub config: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub resume: Option<PathBuf>,
    /// Resume although the train shards differ from those the checkpoint recorded.
    pub accept_data_change: bool,
}

/// The config a request resolves to, and the directory of the run.
pub fn resolve_request(req: &TrainRequest) -> Result<(Config, String)> {
    match (&req.config, &req.resume) {
        (Some(file), _) => {
            let r = load_config(file, &req.overrides)?;
            Ok((r.config, r.name))
        }
        (None, Some(run_dir)) => {
            let file = run_dir.join("config.toml");
            let r = load_config(&file, &req.overrides)?;
            Ok((r.config, r.name))
        }
        (None, None) => {
            bail!("give --config FILE (e.g. configs/quickstart.toml) or --resume RUN_DIR")
        }
    }
}

/// The task a request trains: `[task] kind` of its config file (or, on resume, of the run
/// directory's `config.toml`), after `--set task.kind=…`.
pub fn request_kind(req: &TrainRequest) -> Result<crate::config::TaskKind> {
    match (&req.config, &req.resume) {
        (Some(file), _) => crate::config::task_kind(file, &req.overrides),
        (None, Some(dir)) => {
            if !dir.join("config.toml").is_file() {
                bail!(
                    "{} is not a run directory (no config.toml): give --resume the directory a run wrote under train.out_dir",
                    dir.display()
                );
            }
            crate::config::task_kind(&dir.join("config.toml"), &req.overrides)
        }
        (None, None) => {
            bail!("give --config FILE (e.g. configs/quickstart.toml) or --resume RUN_DIR")
        }
    }
}

fn new_run_dir(config: &Config, name: &str) -> Result<PathBuf> {
    new_run_dir_in(
        &config.train.out_dir,
        config.train.run_name.as_deref(),
        name,
    )
}

/// Creates a fresh run directory under `out_dir`: `run_name`, or `<name>-<timestamp>`, with a
/// `-2`, `-3`, … suffix when taken.
pub fn new_run_dir_in(out_dir: &str, run_name: Option<&str>, name: &str) -> Result<PathBuf> {
    let base = PathBuf::from(out_dir);
    let stem = match run_name {
        Some(n) => n.to_string(),
        None => format!("{name}-{}", chrono::Local::now().format("%Y%m%d-%H%M%S")),
    };
    let mut dir = base.join(&stem);
    let mut k = 1;
    while dir.exists() {
        k += 1;
        dir = base.join(format!("{stem}-{k}"));
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the run directory {}", dir.display()))?;
    Ok(dir)
}

/// Removes, when dropped, a new run directory that a failed start left with nothing but its
/// config.toml (bad data, a bad expert, …): no metrics.jsonl, no checkpoints, no tokenizer. A
/// directory where training began is never touched.
pub struct FreshRunDir(pub Option<PathBuf>);

impl Drop for FreshRunDir {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else {
            return;
        };
        let began = ["metrics.jsonl", "checkpoints", "tokenizer.json"]
            .iter()
            .any(|name| dir.join(name).exists());
        if !began {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Checks that a resumed run only changes what a resume may change.
fn check_resume_compatible(run_dir: &Path, config: &Config) -> Result<PathBuf> {
    let saved = Config::from_run_file(&run_dir.join("config.toml"))?;
    let diffs = config.incompatible_keys(&saved)?;
    if !diffs.is_empty() {
        bail!(
            "incompatible: resuming {} with a config that changes {}. Only {} may change on resume; start a new run for anything else",
            run_dir.display(),
            diffs.join(", "),
            crate::config::resumable_text(&Config::RESUMABLE.0, &Config::RESUMABLE.1)
        );
    }
    checkpoint::resolve(run_dir)
}

/// On resume: the train shards must be those the checkpoint recorded (none recorded: version 1,
/// nothing to compare), unless `accept` says otherwise.
fn check_same_shards(ckpt: &Path, saved: &[String], now: &[String], accept: bool) -> Result<()> {
    if saved.is_empty() || saved == now {
        return Ok(());
    }
    let added: Vec<&String> = now.iter().filter(|p| !saved.contains(p)).collect();
    let missing: Vec<&String> = saved.iter().filter(|p| !now.contains(p)).collect();
    let what = format!(
        "added: {}; missing: {}",
        if added.is_empty() {
            "none".into()
        } else {
            added
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        if missing.is_empty() {
            "none".into()
        } else {
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if accept {
        eprintln!("warning: the train shards changed since {} ({what}); continuing as --accept-data-change says (the data order differs from the original run's)", ckpt.display());
        return Ok(());
    }
    bail!(
        "incompatible: the train shards changed since {} was written ({what}). Restore them, or resume with --accept-data-change to continue on the new set",
        ckpt.display()
    )
}

/// Runs (or resumes) a training run and returns how it ended.
pub fn run_training(req: &TrainRequest) -> Result<(PathBuf, RunOutcome)> {
    let (config, name) = resolve_request(req)?;
    // NCCL for several CUDA devices, before the run directory exists (this may start the
    // process again with NCCL on the library path).
    crate::train::dp::preflight(&config.device.plan()?, config.train.batch_size)?;
    let (run_dir, resume_from) = match &req.resume {
        Some(dir) => {
            let ckpt = check_resume_compatible(dir, &config)?;
            (dir.clone(), Some(ckpt))
        }
        None => (new_run_dir(&config, &name)?, None),
    };
    let _fresh = FreshRunDir(resume_from.is_none().then(|| run_dir.clone()));
    // The resolved config goes into the run directory before step 1.
    crate::fsutil::write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;

    let cache = crate::kernel_cache::configure(None)?;
    let plan = config.device.plan()?;
    let chosen = choose_device(plan.primary())?;
    // W ≥ 2 data-parallel workers when `device` lists several (worker 0 on `chosen`).
    let mut group = DataParallel::for_plan(&plan, &chosen.device)?;
    let run_tokenizer = match &resume_from {
        Some(ckpt) => {
            let meta = checkpoint::read_meta(ckpt)?;
            Some(crate::lm::prepare::checkpoint_tokenizer(
                &run_dir,
                &config,
                &meta.tokenizer_hash,
            )?)
        }
        None => None,
    };
    let data = prepare_run_data(&config, &run_dir, run_tokenizer.as_deref())?;
    if let Some(ckpt) = &resume_from {
        check_same_shards(
            ckpt,
            &checkpoint::read_meta(ckpt)?.train_shards,
            &data.train_shards,
            req.accept_data_change,
        )?;
        let saved = checkpoint::read_meta(ckpt)?.tokenizer_hash;
        if !saved.is_empty() && saved != data.tokenizer.content_hash() {
            bail!(
                "incompatible: the tokenizer {} is not the one {} was trained with (its hash differs); restore that tokenizer.json or start a new run",
                data.tokenizer_path.display(),
                ckpt.display()
            );
        }
    }
    let mut gpt = Gpt::new(GptShape::from(&config.model));
    let (compute, matmul_note) = config.model.compute_on(chosen.backend);
    gpt.compute = compute;
    let n_params = count(gpt.specs());
    // A new run may start from a Hugging Face model (model.init_from); a resumed one never does.
    let init = match &resume_from {
        Some(_) => None,
        None => crate::interop::init_from::load_init_weights(&config, &data.tokenizer)?,
    };

    let mut header = vec![
        format!("== {} ==", build_info()),
        format!("run directory: {}", run_dir.display()),
        format!("device: {}", chosen.description),
        cache.describe(),
        format!(
            "model: GPT-2 architecture with {} GELU, {} layers, {} heads, width {}, context {}, vocabulary {} (tokenizer {}) — {n_params} parameters ({:.2}M)",
            match config.model.activation {
                crate::model::Activation::Exact => "exact (erf)",
                crate::model::Activation::Tanh => "tanh-approximate (gelu_new)",
            },
            config.model.n_layer,
            config.model.n_head,
            config.model.n_embd,
            config.model.block_size,
            config.model.vocab_size,
            data.tokenizer.vocab_size(),
            n_params as f64 / 1e6
        ),
        format!("compute: {}", config.model.describe_compute()),
    ];
    header.extend(matmul_note);
    header.extend(data.notes.iter().cloned());
    match &resume_from {
        Some(p) => header.push(format!("resuming from {}", p.display())),
        None => header.push(match &init {
            Some(i) => i.note.clone(),
            None => "starting from scratch".into(),
        }),
    }
    header.push("resolved config:".into());
    header.extend(config.to_toml()?.lines().map(|l| format!("  {l}")));
    write_header(&run_dir, &header)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    let mut task = LmTask::for_run(gpt, &config, &data);
    if let Some(i) = init {
        task = task.with_initial_params(i.params);
    }
    if config.eval.generate_every > 0 {
        let mut generation = GenerationEval::new(
            config.eval.clone(),
            data.prompts.clone(),
            data.tokenizer.clone(),
            run_dir.join("generations.jsonl"),
        )?;
        if let Some(path) = &config.eval.judge_checkpoint {
            generation = generation.with_judge(Judge::load(
                path,
                &data.tokenizer,
                &data.tokenizer_path,
                &chosen.device,
            )?);
        }
        task = task.with_generation(generation);
    }
    let opts = TrainOptions {
        run_dir: run_dir.clone(),
        config: config.loop_config()?,
        device: chosen.device,
        resume_from,
        tokenizer_hash: data.tokenizer.content_hash(),
        train_shards: data.train_shards.clone(),
        stop,
    };
    let outcome = train_parallel(&mut task, opts, group.take())?;
    Ok((run_dir, outcome))
}

/// What `lmtrain warmup` did.
pub struct WarmupReport {
    pub seconds: f64,
    pub first_step_seconds: Option<f64>,
    pub cache: crate::kernel_cache::KernelCache,
    /// Bytes under the cache directory afterwards.
    pub cache_bytes: u64,
}

/// The overrides that turn a run's config into its warm-up: `steps` training steps with the EMA
/// updating from the start, then one validation and (if the run generates) one generation
/// evaluation with a single prompt, in a scratch run directory. Shapes stay the run's, so the
/// kernels and autotune keys are the ones the run will ask for.
pub fn warmup_overrides(config: &Config, steps: u64, scratch: &Path) -> Vec<String> {
    let quoted = toml::Value::String(scratch.display().to_string()).to_string();
    let mut o = vec![
        format!("train.max_steps={steps}"),
        format!("train.out_dir={quoted}"),
        "train.run_name=\"warmup\"".to_string(),
        "train.log_every=1".to_string(),
        format!("eval.val_every={steps}"),
        "ema.burn_in=0".to_string(),
        format!("checkpoint.every={steps}"),
        "checkpoint.keep_last=1".to_string(),
    ];
    if config.eval.generate_every > 0 {
        o.push(format!("eval.generate_every={steps}"));
        o.push("eval.num_prompts=1".to_string());
    }
    o
}

/// Runs a config's warm-up (see [`warmup_overrides`]) so that the kernel cache holds what its
/// run will compile and tune; the scratch run directory is removed afterwards.
pub fn warmup(config_file: &Path, overrides: &[String], steps: u64) -> Result<WarmupReport> {
    if steps == 0 {
        bail!("--steps must be ≥ 1");
    }
    let cache = crate::kernel_cache::configure(None)?;
    let scratch = cache.dir.join("warmup-scratch");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot clear {}", scratch.display()))?;
    }
    let base = load_config(config_file, overrides)?.config;
    let mut all = overrides.to_vec();
    all.extend(warmup_overrides(&base, steps, &scratch));
    let req = TrainRequest {
        config: Some(config_file.to_path_buf()),
        overrides: all,
        resume: None,
        accept_data_change: false,
    };
    let start = std::time::Instant::now();
    let (_, outcome) = run_training(&req)?;
    let seconds = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&scratch).with_context(|| {
        format!(
            "cannot remove the warm-up's scratch run {}",
            scratch.display()
        )
    })?;
    Ok(WarmupReport {
        seconds,
        first_step_seconds: outcome.first_step_seconds,
        cache_bytes: dir_bytes(&cache.dir),
        cache,
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Appends `lines` to the run's train.log and prints them on stderr.
pub fn write_header(run_dir: &Path, lines: &[String]) -> Result<()> {
    use std::io::Write;
    let path = run_dir.join("train.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    for l in lines {
        writeln!(f, "{l}").with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("{l}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_keeps_the_run_shapes_and_shortens_everything_else() {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.toml");
        let mut config = load_config(Path::new(shipped), &[]).unwrap().config;
        config.eval.generate_every = 500;
        let o = warmup_overrides(&config, 3, Path::new("/tmp/k/warmup-scratch"));
        for want in [
            "train.max_steps=3",
            "train.out_dir=\"/tmp/k/warmup-scratch\"",
            "eval.val_every=3",
            "ema.burn_in=0",
            "eval.generate_every=3",
            "eval.num_prompts=1",
        ] {
            assert!(o.iter().any(|x| x == want), "{want} missing from {o:?}");
        }
        // Nothing that changes a shape: the model, batch, context and generation length stay.
        assert!(!o.iter().any(|x| x.starts_with("model.")
            || x.starts_with("train.batch_size")
            || x.starts_with("eval.generate_tokens")));
        config.eval.generate_every = 0;
        let o = warmup_overrides(&config, 3, Path::new("/x"));
        assert!(!o.iter().any(|x| x.starts_with("eval.generate_every")));
    }
}
