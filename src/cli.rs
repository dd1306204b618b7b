//! The command line: clap definitions and dispatch only.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::run::{resolve_request, run_training, TrainRequest};

#[derive(Parser, Debug)]
#[command(
    name = "lmtrain",
    version,
    about = "Train GPT language models in burn and study gradient variance amplification (raw vs EMA weights)",
    long_about = "Train GPT language models in burn and study gradient variance amplification.\n\n\
        `lmtrain --config FILE` trains (the same as `lmtrain train --config FILE`). Every run logs \
        validation loss for the raw weights and for the EMA of iterates (Block et al., ICLR 2024).\n\n\
        Quick start: scripts/setup.sh && lmtrain --config configs/quickstart.toml",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// TOML config file (see configs/). Relative paths in it resolve against its directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override a config value; repeatable. VALUE is parsed as TOML, else taken as a string
    /// (e.g. --set optim.lr=3e-4 --set device=cpu).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved config (after --set, with absolute paths) and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Continue the run in RUN_DIR from its latest checkpoint, up to train.max_steps. May come
    /// with the run's --config and --set flags; only train.max_steps, train.log_every,
    /// checkpoint.* and eval.* may differ.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (the default command).
    Train(TrainArgs),
    /// Print a continuation of a prompt from a checkpoint (stdout carries only the text).
    Sample(SampleArgs),
    /// Train the byte-level BPE tokenizer of a config and write tokenizer.json.
    Tokenizer(TokenizerArgs),
    /// Data utilities.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A checkpoint file, or a run directory (its latest checkpoint).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,
    /// Use the EMA weights instead of the raw ones.
    #[arg(long)]
    pub ema: bool,
    /// Text to continue, encoded as is (no end-of-text token is put in front).
    #[arg(long)]
    pub prompt: String,
    /// Maximum number of new tokens; generation stops earlier at end-of-text.
    #[arg(long, default_value_t = 200)]
    pub tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the K most likely tokens; 0 for all.
    #[arg(long = "top-k", default_value_t = 50)]
    pub top_k: usize,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// "auto", "cpu", "cuda" or "cuda:N".
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct TokenizerArgs {
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where to write tokenizer.json when the config has no tokenizer.path.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write the synthetic TinyStories-like corpus with checkable long-range constraints
    /// (train and validation parquet shards in the Hugging Face layout).
    Synth {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        stories: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Measure the data pipeline alone: tokenizer tokens/s on one row group, then the whole
    /// training stream (read, tokenize, pack, shuffle) in tokens/s. Threads: RAYON_NUM_THREADS.
    Bench {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Windows to pull from the training stream.
        #[arg(long, default_value_t = 20_000)]
        windows: usize,
    },
}

/// Parses the process arguments and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => train_command(cli.train),
        Some(Command::Train(args)) => train_command(args),
        Some(Command::Sample(args)) => sample_command(args),
        Some(Command::Tokenizer(args)) => tokenizer_command(args),
        Some(Command::Data {
            command: DataCommand::Synth { out, stories, seed },
        }) => {
            let s = crate::data::synth::write_corpus(&out, stories, seed)?;
            eprintln!(
                "wrote {} train stories to {} and {} validation stories to {}",
                s.train_stories,
                s.train_path.display(),
                s.validation_stories,
                s.validation_path.display()
            );
            Ok(())
        }
        Some(Command::Data {
            command:
                DataCommand::Bench {
                    config,
                    set,
                    windows,
                },
        }) => data_bench_command(&config, &set, windows),
    }
}

fn data_bench_command(config: &std::path::Path, set: &[String], windows: usize) -> Result<()> {
    let resolved = crate::config::load_config(config, set)?;
    let work = tempfile_dir()?;
    let b = crate::lm::data_bench::bench_data(&resolved.config, &work, windows)?;
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "RESULT bench=data threads={} tokenizer_docs={} tokenizer_tokens={} tokenizer_tok_s={:.0} stream_tokens={} stream_tok_s={:.0}",
        b.threads,
        b.docs,
        b.tokenizer_tokens,
        b.tokenizer_tokens as f64 / b.tokenizer_secs,
        b.stream_tokens,
        b.stream_tokens as f64 / b.stream_secs
    );
    Ok(())
}

/// A scratch directory for a tokenizer trained only for a measurement.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lmtrain-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn train_command(args: TrainArgs) -> Result<()> {
    let req = TrainRequest {
        config: args.config,
        overrides: args.set,
        resume: args.resume,
    };
    if args.dump_config {
        let (config, _) = resolve_request(&req)?;
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let (run_dir, outcome) = run_training(&req)?;
    if outcome.interrupted {
        eprintln!(
            "stopped at step {}; resume with: lmtrain train --resume {}",
            outcome.final_step,
            run_dir.display()
        );
    } else {
        eprintln!("done: step {} in {}", outcome.final_step, run_dir.display());
    }
    Ok(())
}

fn sample_command(args: SampleArgs) -> Result<()> {
    use crate::device::{choose_device, DeviceChoice};
    use crate::sample::{load_model, Decoding};
    let chosen = choose_device(DeviceChoice::parse(&args.device)?)?;
    eprintln!("device: {}", chosen.description);
    let model = load_model(&args.checkpoint, args.ema, chosen.device)?;
    eprintln!(
        "step {} ({} weights)",
        model.step,
        if args.ema { "EMA" } else { "raw" }
    );
    let prompt = model.tokenizer.encode(&args.prompt)?;
    let d = Decoding {
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
    };
    let ids = model.generate(&prompt, args.tokens, &d)?;
    let text = model.tokenizer.decode(&ids)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("cannot write to stdout")?;
    Ok(())
}

fn tokenizer_command(args: TokenizerArgs) -> Result<()> {
    let r = crate::config::load_config(&args.config, &args.set)?;
    let mut config = r.config;
    if let Some(out) = args.out {
        config.tokenizer.path = Some(
            std::path::absolute(&out)
                .with_context(|| format!("bad --out {}", out.display()))?
                .to_string_lossy()
                .into_owned(),
        );
    }
    if config.tokenizer.path.is_none() {
        bail!("the config has no tokenizer.path: give --out FILE (a run trains its own tokenizer into its run directory otherwise)");
    }
    let (tok, path, notes) =
        crate::lm::prepare::prepare_tokenizer(&config, std::path::Path::new("."))?;
    for n in notes {
        eprintln!("{n}");
    }
    eprintln!(
        "tokenizer {} has {} tokens (end-of-text id {})",
        path.display(),
        tok.vocab_size(),
        tok.eot_id()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn top_level_config_means_train() {
        let cli = Cli::try_parse_from([
            "lmtrain",
            "--config",
            "c.toml",
            "--set",
            "optim.lr=1e-3",
            "--set",
            "device=cpu",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.train.set.len(), 2);
        let cli = Cli::try_parse_from(["lmtrain", "train", "--config", "c.toml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Train(_))));
    }
}
