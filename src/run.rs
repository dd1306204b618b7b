//! A language-model training run from the command line: config, run directory, device, data,
//! signals, then the generic trainer.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::config::{load_config, Config};
use crate::device::{choose_device, DeviceChoice};
use crate::lm::gen_eval::{GenerationEval, Judge};
use crate::lm::{prepare_run_data, LmTask};
use crate::model::params::count;
use crate::model::{Gpt, GptShape};
use crate::train::checkpoint;
use crate::train::{train, RunOutcome, TrainOptions};

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

fn new_run_dir(config: &Config, name: &str) -> Result<PathBuf> {
    let base = PathBuf::from(&config.train.out_dir);
    let stem = match &config.train.run_name {
        Some(n) => n.clone(),
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

/// Checks that a resumed run only changes what a resume may change.
fn check_resume_compatible(run_dir: &Path, config: &Config) -> Result<PathBuf> {
    let saved = Config::from_run_file(&run_dir.join("config.toml"))?;
    let diffs = config.incompatible_keys(&saved)?;
    if !diffs.is_empty() {
        bail!(
            "incompatible: resuming {} with a config that changes {}. Only train.max_steps, train.log_every, checkpoint.* and eval.* may change on resume; start a new run for anything else",
            run_dir.display(),
            diffs.join(", ")
        );
    }
    checkpoint::resolve(run_dir)
}

/// Runs (or resumes) a training run and returns how it ended.
pub fn run_training(req: &TrainRequest) -> Result<(PathBuf, RunOutcome)> {
    let (config, name) = resolve_request(req)?;
    let (run_dir, resume_from) = match &req.resume {
        Some(dir) => {
            let ckpt = check_resume_compatible(dir, &config)?;
            (dir.clone(), Some(ckpt))
        }
        None => (new_run_dir(&config, &name)?, None),
    };
    // The resolved config goes into the run directory before step 1.
    crate::fsutil::write_atomic(&run_dir.join("config.toml"), config.to_toml()?.as_bytes())?;

    let chosen = choose_device(DeviceChoice::parse(&config.device)?)?;
    let data = prepare_run_data(&config, &run_dir)?;
    if let Some(ckpt) = &resume_from {
        let saved = checkpoint::read_meta(ckpt)?.tokenizer_hash;
        if !saved.is_empty() && saved != data.tokenizer.content_hash() {
            bail!(
                "incompatible: the tokenizer {} is not the one {} was trained with (its hash differs); restore that tokenizer.json or start a new run",
                data.tokenizer_path.display(),
                ckpt.display()
            );
        }
    }
    let gpt = Gpt::new(GptShape::from(&config.model));
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
    ];
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
    let mut task = LmTask::new(
        gpt,
        data.train.clone(),
        data.tokenizer.clone(),
        config.train.seed,
        data.val,
        config.train.batch_size,
    );
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
            let judge = crate::sample::load_model(Path::new(path), false, chosen.device.clone())
                .with_context(|| format!("loading eval.judge_checkpoint {path}"))?;
            if judge.tokenizer.content_hash() != data.tokenizer.content_hash() {
                bail!(
                    "eval.judge_checkpoint {path} uses a different tokenizer from this run's {}; a judge must share the tokenizer",
                    data.tokenizer_path.display()
                );
            }
            generation = generation.with_judge(Judge {
                gpt: judge.gpt,
                params: judge.params,
            });
        }
        task = task.with_generation(generation);
    }
    let opts = TrainOptions {
        run_dir: run_dir.clone(),
        config,
        device: chosen.device,
        resume_from,
        tokenizer_hash: data.tokenizer.content_hash(),
        stop,
    };
    let outcome = train(&mut task, opts)?;
    Ok((run_dir, outcome))
}

fn write_header(run_dir: &Path, lines: &[String]) -> Result<()> {
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
