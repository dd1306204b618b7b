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
        `lmtrain --config FILE` trains (the same as `lmtrain train --config FILE`): a language \
        model, or with `[task] kind = \"bc\"` (configs/bc/) a policy cloned from a MuJoCo expert. \
        Every run logs validation loss for the raw weights and for the EMA of iterates (Block et \
        al., ICLR 2024), and its long-horizon quality: generations for the LM, rollouts for BC.\n\n\
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
    /// TOML config file (see configs/; configs/bc/ for behaviour cloning). Relative paths in it
    /// resolve against its directory; relative paths given with --set, against the current one.
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
    /// with the run's --config and --set flags; only train.max_steps, train.log_every, the
    /// train.on_nonfinite keys, train.step_timeout_s, device (one device or a data-parallel
    /// list), checkpoint.* and eval.* may differ (and model.fused_ops, model.bf16_matmuls,
    /// model.flash_attention and model.matmul for a language model); a refusal names what
    /// differs.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// With --resume: continue although the train shards differ from those the checkpoint
    /// recorded (files added or removed under data.train_glob); the data order then changes.
    #[arg(long, requires = "resume")]
    pub accept_data_change: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (the default command).
    Train(TrainArgs),
    /// Print a continuation of a prompt from a checkpoint or a Hugging Face GPT-2 directory
    /// (stdout carries only the text).
    Sample(SampleArgs),
    /// Write a checkpoint as a Hugging Face GPT-2 directory (model.safetensors, config.json,
    /// tokenizer files, README.md) that transformers' GPT2LMHeadModel and AutoTokenizer load.
    Export(ExportArgs),
    /// Print what a checkpoint holds: step, tokens seen, last validation losses, whether EMA
    /// weights are present, the model and the config.
    Inspect(InspectArgs),
    /// Print a model's logits for given tokens as JSON (and optionally its greedy
    /// continuation), to compare lmtrain's forward pass with another implementation.
    Logits(LogitsArgs),
    /// Train the byte-level BPE tokenizer of a config and write tokenizer.json.
    Tokenizer(TokenizerArgs),
    /// Time lmtrain's training step on the PyTorch reference's model shapes and print
    /// `RESULT key=value` lines (first with clipping and EMA off, as the reference, then on).
    Bench(BenchArgs),
    /// Check every fused op (attention, LayerNorm, cross-entropy) against the same function
    /// composed of burn's plain ops on the chosen device: outputs and gradients on random
    /// inputs, one `CHECK` line each with max|fused − plain|/max|plain|; fails over the bound.
    CheckOps(CheckOpsArgs),
    /// Check the GPT against PyTorch's fixture (tests/fixtures/gpt_tiny.safetensors) on the
    /// chosen device and with the chosen compute switches: logits, loss and every gradient, one
    /// `FIXTURE` line each with max|a − b|/max|b| and its bound (f32, or bf16's with bf16
    /// operands); fails over a bound. The integration test `fixture` is the same on the CPU.
    CheckFixture(CheckFixtureArgs),
    /// Check data-parallel training's collective on CUDA devices: NCCL is found and loads, a
    /// communicator is set up, the all-reduced mean is right, and the trainer's data-parallel
    /// step reproduces the single-device step (bit for bit on one device); then time the
    /// all-reduce of a buffer. Prints CHECK and RESULT lines; fails when a check does.
    CheckNccl(CheckNcclArgs),
    /// Time the GEMMs of one training step's linears one by one (forward, input and weight
    /// gradients of qkv, proj, fc, fc_proj and the tied LM head) with burn's matmul in f32
    /// (burn_f32) and, where the device has bf16, on bf16 operands (burn_bf16) and through the
    /// cuBLASLt op of `model.matmul = "cublaslt"` (cublaslt on CUDA; off CUDA the op's reference
    /// GEMMs, lt_reference): one `GEMM` line each (median ms, TFLOP/s, error against f64 on
    /// sampled entries) and a `GEMM_STEP` line per implementation (scripts/gemm_bench.sh puts it
    /// beside PyTorch and prints the route decision).
    GemmBench(GemmBenchArgs),
    /// Fill the GPU kernel cache for a config ahead of its run: a throw-away run of a few
    /// training steps, one validation and one generation evaluation on the chosen device, so
    /// that kernel compilation and autotuning happen now. The cache is $LMTRAIN_KERNEL_CACHE
    /// (default ~/.cache/lmtrain/kernels) and can be copied to another machine with the same
    /// card and lmtrain build.
    Warmup(WarmupArgs),
    /// Write report.md with SVG plots from run directories' metrics.jsonl: does generation
    /// quality (LM) or rollout return (BC) oscillate more than val loss, and what did EMA do
    /// (reads files only).
    Report(ReportArgs),
    /// Roll a behaviour-cloning checkpoint's policy out in its environment (deterministic
    /// actions, fixed reset seeds) and print each episode's return and the summary metrics.
    Rollout(RolloutArgs),
    /// The landscape probe (Block et al. 2024, §4): a checkpoint's weights moved along 1-D
    /// slices θ + s·d, s ∈ [−R, R] (N random directions filter-normalised per weight-matrix
    /// column as in Li et al. 2018, biases and normalisation gains left at zero, and the
    /// gradient of one fixed training minibatch). A behaviour-cloning checkpoint gets the val
    /// BC loss and the rollout return at each point; a language-model one the val loss and the
    /// generation metric --metric (default: greedy story validity), scored by the trainer's own
    /// evaluation code. Writes landscape.md (with the time it took), landscape.csv and plots.
    Landscape(LandscapeArgs),
    /// Data utilities.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// SAC experts for the locomotion tasks: train, export, evaluate, collect datasets, time.
    Expert {
        #[command(subcommand)]
        command: crate::rl::cli::ExpertCommand,
    },
    /// MuJoCo locomotion environments (Gymnasium v4: Walker2d, Hopper, HalfCheetah, Ant,
    /// Humanoid): replay Gymnasium's recordings step by step, time the step rate.
    #[cfg(feature = "mujoco")]
    Env {
        #[command(subcommand)]
        command: crate::env::cli::EnvCommand,
    },
}

/// Where a model comes from: exactly one of `--checkpoint` and `--hf`.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ModelSourceArgs {
    /// A checkpoint file, or a run directory (its latest checkpoint).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// A Hugging Face GPT-2 directory (config.json, model.safetensors, tokenizer.json), such as
    /// one written by `lmtrain export` or GPT-2 124M's.
    #[arg(long, value_name = "DIR")]
    pub hf: Option<PathBuf>,
}

impl ModelSourceArgs {
    fn source(&self, ema: bool) -> Result<crate::interop::host_model::ModelSource> {
        use crate::interop::host_model::ModelSource;
        match (&self.checkpoint, &self.hf) {
            (Some(path), None) => Ok(ModelSource::Checkpoint {
                path: path.clone(),
                ema,
            }),
            (None, Some(dir)) => Ok(ModelSource::HfDir(dir.clone())),
            _ => bail!("give exactly one of --checkpoint PATH and --hf DIR"),
        }
    }
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    /// Use the EMA weights instead of the raw ones (checkpoints only).
    #[arg(long, conflicts_with = "hf")]
    pub ema: bool,
    /// Re-run the whole context for every token instead of using the KV cache (same output;
    /// for comparison and timing).
    #[arg(long = "no-kv-cache")]
    pub no_kv_cache: bool,
    /// Text to continue, encoded as is (no end-of-text token is put in front).
    #[arg(long)]
    pub prompt: String,
    /// Maximum number of new tokens; generation stops earlier at end-of-text.
    #[arg(long, default_value_t = 200, value_parser = crate::config::ranges::flag_usize("sample --tokens"))]
    pub tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8, value_parser = crate::config::ranges::flag_f64("sample --temperature"))]
    pub temperature: f64,
    /// Sample among the K most likely tokens; 0 for all.
    #[arg(long = "top-k", default_value_t = 50)]
    pub top_k: usize,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// "auto", "cpu", "cuda", "cuda:N" or "wgpu" (a `--features wgpu` build).
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint file, or a run directory (its latest checkpoint).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,
    /// Export the EMA weights instead of the raw ones.
    #[arg(long)]
    pub ema: bool,
    /// The directory to write (created if needed; files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A checkpoint file, or a run directory (its latest checkpoint).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["tokens", "text"])))]
pub struct LogitsArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    /// Use the EMA weights instead of the raw ones (checkpoints only).
    #[arg(long, conflicts_with = "hf")]
    pub ema: bool,
    /// Token ids, comma-separated (at most block_size of them).
    #[arg(long, value_name = "ID,ID,...")]
    pub tokens: Option<String>,
    /// Text to encode with the model's tokenizer instead of --tokens (as is: nothing is added
    /// in front); the JSON then shows the ids it encodes to.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Also generate this many tokens greedily after the input with lmtrain's sampler (stops
    /// at end-of-text; only ids the tokenizer knows), reported as "greedy".
    #[arg(long, default_value_t = 0)]
    pub greedy: usize,
    /// "auto", "cpu", "cuda", "cuda:N" or "wgpu" (a `--features wgpu` build). The CPU by default, for reproducible comparisons.
    #[arg(long, default_value = "cpu")]
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

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A named shape: "A" (6 layers, d 384, seq 256, batch 64, vocab 8192) or "B" (12 layers,
    /// d 768, seq 1024, batch 16, vocab 50304). Without it: 2 layers, d 64, 4 heads, seq 32,
    /// batch 8, vocab 128 (seconds on a CPU). The flags below override single dimensions.
    #[arg(long, value_name = "A|B")]
    pub config: Option<String>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long = "d-model")]
    pub d_model: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub seq: Option<usize>,
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Timed steps, after the warm-up.
    #[arg(long, default_value_t = 30, value_parser = crate::config::ranges::flag_usize("bench --steps"))]
    pub steps: usize,
    #[arg(long = "warmup-steps", default_value_t = 20)]
    pub warmup_steps: usize,
    #[arg(long, default_value_t = 1e-3, value_parser = crate::config::ranges::flag_f64("bench --lr"))]
    pub lr: f64,
    /// Peak dense TFLOP/s of the card for the MFU figure (H100/H200 bf16: 989.4).
    #[arg(long = "peak-tflops", default_value_t = 989.4, value_parser = crate::config::ranges::flag_f64("bench --peak-tflops"))]
    pub peak_tflops: f64,
    #[arg(long, default_value = "-")]
    pub label: String,
    /// Only the line with clipping and EMA off.
    #[arg(long = "no-clip-ema-line")]
    pub no_clip_ema_line: bool,
    /// "auto", "cpu", "cuda", "cuda:N" or "wgpu" (a `--features wgpu` build).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The device's float dtype: "f32", "flex32" (f32 storage, f16 tensor-core matmuls), "bf16"
    /// or "f16" (weights and optimizer state in that dtype too). GPU only.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Cast the operands of every matmul to bf16 (f32 weights, products back in f32).
    #[arg(long = "bf16-matmuls")]
    pub bf16_matmuls: bool,
    /// Token embedding as a gather (parallel scatter-add backward) instead of burn's embedding op.
    #[arg(long = "gather-embedding")]
    pub gather_embedding: bool,
    /// Attention as one op with a recomputing backward (no score matrix kept for backward).
    #[arg(long = "fused-attention")]
    pub fused_attention: bool,
    /// LayerNorm as one op with a closed-form backward.
    #[arg(long = "fused-layer-norm")]
    pub fused_layer_norm: bool,
    /// The loss as one op whose backward is softmax − one-hot.
    #[arg(long = "fused-cross-entropy")]
    pub fused_cross_entropy: bool,
    /// The linears' bias gradients summed in two stages (not one strided reduction over every token).
    #[arg(long = "fused-bias")]
    pub fused_bias: bool,
    /// Causal attention's forward pass by the backend's attention kernel (flash attention on
    /// cubecl, autotuned against burn's fallback), with --fused-attention's backward. Not in --fused.
    #[arg(long = "flash-attention")]
    pub flash_attention: bool,
    /// The GEMM behind the linears and the LM head: "burn" or "cublaslt" (bf16 operands, f32
    /// accumulation, bias fused; CUDA only, elsewhere burn's matmul with a note), as
    /// `model.matmul`.
    #[arg(long, default_value = "burn", value_parser = parse_matmul)]
    pub matmul: crate::model::cublaslt::MatmulRoute,
    /// All of --gather-embedding, --fused-attention, --fused-layer-norm, --fused-cross-entropy,
    /// --fused-bias.
    #[arg(long)]
    pub fused: bool,
    /// Time every kernel launch and write the per-kernel log to FILE (cubecl's profiler; adds
    /// overhead and a device sync after each forward and backward pass, so the step times
    /// printed with it are not the benchmark's figures, and in_use_sampled_gib is not measured).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Print `LOSS label= step= loss=` every N steps and at the last (reads the loss, after the
    /// step's time is taken), for loss curves such as scripts/loss_band.sh's. 0: never.
    #[arg(long, default_value_t = 0)]
    pub loss_every: usize,
}

#[derive(Args, Debug)]
pub struct CheckOpsArgs {
    /// "auto", "cpu", "cuda", "cuda:N" or "wgpu" (a `--features wgpu` build).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Input sizes: "small" (odd sizes, quick) or "gpu" (GPT-2-small-like: T 256, width 768,
    /// vocabulary 50304).
    #[arg(long, default_value = "small")]
    pub shapes: String,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Bound for the f32 ops (on the GPU both sides use TF32 matmuls, so ~1e-3 is expected).
    #[arg(long, default_value_t = 1e-2, value_parser = crate::config::ranges::flag_f64("check-ops --max-rel-f32"))]
    pub max_rel_f32: f64,
    /// Bound for the bf16 variant.
    #[arg(long, default_value_t = 5e-2, value_parser = crate::config::ranges::flag_f64("check-ops --max-rel-bf16"))]
    pub max_rel_bf16: f64,
}

#[derive(Args, Debug)]
pub struct CheckFixtureArgs {
    /// "auto", "cpu", "cuda", "cuda:N" or "wgpu" (a `--features wgpu` build).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The fixture file.
    #[arg(long, default_value = "tests/fixtures/gpt_tiny.safetensors")]
    pub fixture: PathBuf,
    /// The GEMM behind the linears: "burn" or "cublaslt" (as `model.matmul`).
    #[arg(long, default_value = "burn", value_parser = parse_matmul)]
    pub matmul: crate::model::cublaslt::MatmulRoute,
    /// Every matmul's operands in bf16 (as `model.bf16_matmuls`).
    #[arg(long = "bf16-matmuls")]
    pub bf16_matmuls: bool,
    /// The fused ops (as `model.fused_ops`).
    #[arg(long)]
    pub fused: bool,
}

#[derive(Args, Debug)]
pub struct GemmBenchArgs {
    /// "auto", "cpu", "cuda", "cuda:N" or "wgpu" (a `--features wgpu` build).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Model shape: "b" (12 layers, width 768, 16 × 1024 tokens, vocabulary 50304), "a" (6,
    /// 384, 64 × 256, 8192) or "tiny" (2, 16, 24, 40: checks the command in seconds).
    #[arg(long, default_value = "b")]
    pub shape: String,
    /// Timed repetitions of each GEMM (the median is reported).
    #[arg(long, default_value_t = 20, value_parser = crate::config::ranges::flag_usize("gemm-bench --reps"))]
    pub reps: usize,
    /// Untimed repetitions first (kernel compilation and autotuning).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Rows and columns of C sampled for the error against f64.
    #[arg(long, default_value_t = 32, value_parser = crate::config::ranges::flag_usize("gemm-bench --samples"))]
    pub samples: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Only the GEMMs whose name contains this (e.g. "lm_head" or ".dw").
    #[arg(long)]
    pub only: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckNcclArgs {
    /// CUDA device indices, comma-separated, one worker each (e.g. 0,1,2,3).
    #[arg(long, default_value = "0", value_delimiter = ',')]
    pub devices: Vec<usize>,
    /// Size of the timed all-reduce buffer in MiB of f32 (config B's gradients: 475).
    #[arg(long, default_value_t = 256.0, value_parser = crate::config::ranges::flag_f64("check-nccl --mib"))]
    pub mib: f64,
    /// Timed all-reduces (after 2 warm-up ones).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
}

#[derive(Args, Debug)]
pub struct WarmupArgs {
    /// The config of the run to warm up for (its model, batch and eval shapes).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Config overrides, as for training; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Training steps to run (each compiles nothing new after the first, except where the
    /// EMA or a schedule phase starts).
    #[arg(long, default_value_t = 2, value_parser = crate::config::ranges::flag_u64("warmup --steps"))]
    pub steps: u64,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (each with metrics.jsonl; config.toml labels them). One run: the report
    /// goes to RUN_DIR/report.md and its plots to RUN_DIR/report/. Several: overlaid, in --out.
    #[arg(value_name = "RUN_DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// Output directory for report.md and plots/ (default: the run directory for one run,
    /// ./report for several).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Width of the centred moving average that is the trend (odd, ≥ 1).
    #[arg(long = "trend-window", value_name = "W", default_value_t = crate::eval::oscillation::DEFAULT_TREND_WINDOW, value_parser = crate::report::parse_trend_window)]
    pub trend_window: usize,
    /// Compute the statistics (and plots) over steps ≥ N only (0: every step). Default: from
    /// the first validation after which the val-loss trend has less than 10% of its descent
    /// left, so that the early descent does not dominate the indices; the report says which.
    #[arg(long = "from-step", value_name = "N")]
    pub from_step: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RolloutArgs {
    /// A BC checkpoint file, or a run directory (its newest intact checkpoint).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,
    /// Roll out the EMA weights instead of the raw ones.
    #[arg(long)]
    pub ema: bool,
    /// Episodes, from reset seeds SEED, SEED+1, … (default: the run's eval.rollouts, so that the
    /// run's last evaluation is reproduced)
    #[arg(long, value_parser = crate::config::ranges::flag_usize("rollout --episodes"))]
    pub episodes: Option<usize>,
    /// First reset seed (default: the run's eval.rollout_seed, the starts its evaluations used).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps per episode at most (default: the run's eval.horizon).
    #[arg(long, value_parser = crate::config::ranges::flag_usize("rollout --horizon"))]
    pub horizon: Option<usize>,
}

#[derive(Args, Debug)]
pub struct LandscapeArgs {
    /// A checkpoint file (BC or language model), or a run directory (its newest intact
    /// checkpoint).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,
    /// Probe around the EMA weights instead of the raw ones.
    #[arg(long)]
    pub ema: bool,
    /// Random directions (the minibatch-gradient direction is added to them).
    #[arg(long, default_value_t = 2)]
    pub directions: usize,
    /// Half-width R of each slice, in units of the filter-normalised direction.
    #[arg(long, default_value_t = 0.5, value_parser = crate::config::ranges::flag_f64("landscape --radius"))]
    pub radius: f64,
    /// Points per slice, evenly spaced over [−R, R]; odd, so that one is s = 0 (the checkpoint).
    #[arg(long, default_value_t = 11, value_parser = crate::config::ranges::flag_usize("landscape --points"))]
    pub points: usize,
    /// BC only: rollout episodes per point (default: the run's eval.rollouts).
    #[arg(long, value_parser = crate::config::ranges::flag_usize("landscape --episodes"))]
    pub episodes: Option<usize>,
    /// Language models only: the generation metric, as the trainer logs it
    /// (gen_<metric>_<mode>_<weights>), over the run's fixed prompts and seeds. One of validity
    /// (the story checker's greedy validity; the default), valid, rep2, rep4, distinct2,
    /// distinct4, longest_span, length, invalid_<reason> (no_hero, wrong_character_loses,
    /// wrong_character_at_end, pronoun_mismatch, object_mismatch, incomplete), judge_nll,
    /// judge_nll_pos_0_64, judge_nll_pos_64_256, judge_nll_pos_256_end; each optionally suffixed
    /// _greedy (the default) or _sample.
    #[arg(long, value_name = "NAME")]
    pub metric: Option<String>,
    /// Language models only: validation windows per point, the first N of the run's fixed ones
    /// [default: the run's eval.val_windows, so that the centre reproduces its val loss].
    #[arg(long, value_name = "N", value_parser = crate::config::ranges::flag_usize("landscape --val-windows"))]
    pub val_windows: Option<usize>,
    /// Language models only: the device to evaluate on (cpu, cuda, cuda:N, auto, …) [default:
    /// cpu]. BC probes run on the CPU.
    #[arg(long, value_name = "D")]
    pub device: Option<String>,
    /// Seed of the random directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (default: RUN_DIR/landscape, beside the checkpoints).
    #[arg(long, value_name = "DIR")]
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
    crate::fault::init()?;
    match cli.command {
        None => train_command(cli.train),
        Some(Command::Train(args)) => train_command(args),
        Some(Command::Sample(args)) => sample_command(args),
        Some(Command::Export(args)) => export_command(args),
        Some(Command::Inspect(args)) => {
            print!("{}", crate::interop::inspect::inspect(&args.path)?);
            Ok(())
        }
        Some(Command::Logits(args)) => logits_command(args),
        Some(Command::Tokenizer(args)) => tokenizer_command(args),
        Some(Command::Bench(args)) => bench_command(args),
        Some(Command::CheckOps(a)) => {
            crate::bench::check_ops::run(&crate::bench::check_ops::CheckOpsOptions {
                device: a.device,
                shapes: a.shapes,
                seed: a.seed,
                max_rel_f32: a.max_rel_f32,
                max_rel_bf16: a.max_rel_bf16,
            })
        }
        Some(Command::CheckFixture(a)) => {
            let mut compute = if a.fused {
                crate::model::Compute::all_fused()
            } else {
                crate::model::Compute::default()
            };
            compute.bf16_matmuls = a.bf16_matmuls;
            crate::bench::check_fixture::run(&a.fixture, &a.device, compute, a.matmul)
        }
        Some(Command::CheckNccl(a)) => check_nccl_command(a),
        Some(Command::GemmBench(a)) => {
            crate::bench::gemm::run(&crate::bench::gemm::GemmBenchOptions {
                device: a.device,
                shape: a.shape,
                reps: a.reps,
                warmup: a.warmup,
                samples: a.samples,
                seed: a.seed,
                only: a.only,
            })?;
            Ok(())
        }
        Some(Command::Warmup(args)) => warmup_command(args),
        Some(Command::Report(args)) => report_command(args),
        Some(Command::Rollout(args)) => rollout_command(args),
        Some(Command::Landscape(args)) => landscape_command(args),
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
        Some(Command::Expert { command }) => crate::rl::cli::run(command),
        #[cfg(feature = "mujoco")]
        Some(Command::Env { command }) => crate::env::cli::run(command),
    }
}

fn landscape_command(args: LandscapeArgs) -> Result<()> {
    let ckpt = crate::train::checkpoint::resolve(&args.checkpoint)?;
    let kind = crate::config::kind_of_text(&crate::train::checkpoint::read_meta(&ckpt)?.config);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::interop::host_model::run_dir_of(&ckpt).join("landscape"));
    let n = match kind {
        crate::config::TaskKind::Bc => {
            let lm_only = [
                ("--metric", args.metric.is_some()),
                ("--val-windows", args.val_windows.is_some()),
                ("--device", args.device.is_some()),
            ];
            if let Some((flag, _)) = lm_only.iter().find(|(_, given)| *given) {
                bail!(
                    "{flag} applies to language-model checkpoints; {} is a behaviour-cloning one, whose probe measures the val BC loss and the rollout return on the CPU (--episodes sets the rollouts)",
                    ckpt.display()
                );
            }
            crate::bc::landscape::landscape(&crate::bc::landscape::LandscapeRequest {
                checkpoint: &args.checkpoint,
                ema: args.ema,
                directions: args.directions,
                radius: args.radius,
                points: args.points,
                episodes: args.episodes,
                seed: args.seed,
                out: out.clone(),
            })?
            .len()
        }
        crate::config::TaskKind::Lm => {
            if args.episodes.is_some() {
                bail!(
                    "--episodes applies to behaviour-cloning checkpoints; {} is a language-model one: --metric picks its generation metric, --val-windows its validation windows",
                    ckpt.display()
                );
            }
            use crate::lm::landscape::DEFAULT_METRIC;
            crate::lm::landscape::landscape(&crate::lm::landscape::LmLandscapeRequest {
                checkpoint: &args.checkpoint,
                ema: args.ema,
                directions: args.directions,
                radius: args.radius,
                points: args.points,
                metric: args.metric.as_deref().unwrap_or(DEFAULT_METRIC),
                val_windows: args.val_windows,
                seed: args.seed,
                device: args.device.as_deref().unwrap_or("cpu"),
                out: out.clone(),
            })?
            .len()
        }
    };
    eprintln!("{n} points");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", out.join("landscape.md").display()).context("cannot write to stdout")?;
    Ok(())
}

fn rollout_command(args: RolloutArgs) -> Result<()> {
    let report =
        crate::bc::rollout_cmd::rollout_checkpoint(&crate::bc::rollout_cmd::RolloutRequest {
            checkpoint: &args.checkpoint,
            ema: args.ema,
            episodes: args.episodes,
            seed: args.seed,
            horizon: args.horizon,
        })?;
    eprintln!("{}", report.description);
    // stdout: one JSON line per episode, then the metrics, for scripts.
    let mut out = std::io::stdout().lock();
    for e in &report.episodes {
        writeln!(out, "{}", serde_json::to_string(e)?).context("cannot write to stdout")?;
    }
    let metrics: serde_json::Map<String, serde_json::Value> = report
        .metrics
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    writeln!(out, "{}", serde_json::Value::Object(metrics)).context("cannot write to stdout")?;
    for (k, v) in &report.metrics {
        eprintln!("{k}: {v:.4}");
    }
    let steps: usize = report.episodes.iter().map(|e| e.length).sum();
    eprintln!(
        "{} episodes, {steps} environment steps in {:.2} s on {} threads: {:.1} rollouts/s, {:.0} env steps/s (policy and expert forwards included)",
        report.episodes.len(),
        report.seconds,
        rayon::current_num_threads(),
        report.episodes.len() as f64 / report.seconds.max(1e-9),
        steps as f64 / report.seconds.max(1e-9)
    );
    Ok(())
}

fn report_command(args: ReportArgs) -> Result<()> {
    let options = crate::report::ReportOptions {
        run_dirs: args.runs,
        out: args.out,
        trend_window: args.trend_window,
        from_step: args.from_step,
    };
    let written = crate::report::write_report(&options)?;
    eprintln!(
        "wrote {} and {} plots",
        written.markdown.display(),
        written.plots.len()
    );
    // stdout carries only the report's path, for scripts.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", written.markdown.display()).context("cannot write to stdout")?;
    Ok(())
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

/// `--matmul`'s values, as `model.matmul` spells them.
fn parse_matmul(s: &str) -> Result<crate::model::cublaslt::MatmulRoute, String> {
    match s {
        "burn" => Ok(crate::model::cublaslt::MatmulRoute::Burn),
        "cublaslt" => Ok(crate::model::cublaslt::MatmulRoute::Cublaslt),
        other => Err(format!("{other:?}: use burn or cublaslt")),
    }
}

fn bench_command(a: BenchArgs) -> Result<()> {
    use crate::bench::gpt_step::{result_line, run_bench, BenchOptions, BenchShape};
    use crate::device::DeviceChoice;
    let base = match a.config.as_deref() {
        None => BenchShape {
            layers: 2,
            d_model: 64,
            heads: 4,
            seq: 32,
            batch: 8,
            vocab: 128,
        },
        Some("A") | Some("a") => BenchShape::A,
        Some("B") | Some("b") => BenchShape::B,
        Some(other) => bail!("--config {other:?}: use A or B (or give the dimensions)"),
    };
    let shape = BenchShape {
        layers: a.layers.unwrap_or(base.layers),
        d_model: a.d_model.unwrap_or(base.d_model),
        heads: a.heads.unwrap_or(base.heads),
        seq: a.seq.unwrap_or(base.seq),
        batch: a.batch.unwrap_or(base.batch),
        vocab: a.vocab.unwrap_or(base.vocab),
    };
    if !shape.d_model.is_multiple_of(shape.heads) || a.steps == 0 {
        bail!("--d-model must be divisible by --heads, and --steps must be ≥ 1");
    }
    let dtype = crate::device::parse_float_dtype(&a.dtype)?;
    let cache = crate::kernel_cache::configure(a.profile.as_deref())?;
    let chosen = crate::device::choose_device_as(DeviceChoice::parse(&a.device)?, Some(dtype))?;
    eprintln!(
        "[lmtrain] {} | device: {} | {}",
        crate::run::build_info(),
        chosen.description,
        cache.describe()
    );
    let backend = chosen.backend;
    let (cublaslt, note) = crate::model::cublaslt::route::resolve(a.matmul, backend);
    if let Some(note) = note {
        eprintln!("[lmtrain] {note}");
    }
    let lines: &[bool] = if a.no_clip_ema_line {
        &[false]
    } else {
        &[false, true]
    };
    for &clip_and_ema in lines {
        let o = BenchOptions {
            shape,
            steps: a.steps,
            warmup_steps: a.warmup_steps,
            lr: a.lr,
            clip_and_ema,
            peak_tflops: a.peak_tflops,
            label: a.label.clone(),
            seed: 1337,
            dtype: a.dtype.clone(),
            compute: crate::model::Compute {
                bf16_matmuls: a.bf16_matmuls,
                gather_embedding: a.gather_embedding || a.fused,
                fused_attention: a.fused_attention || a.fused,
                fused_layer_norm: a.fused_layer_norm || a.fused,
                fused_cross_entropy: a.fused_cross_entropy || a.fused,
                fused_bias: a.fused_bias || a.fused,
                flash_attention: a.flash_attention,
                cublaslt,
            },
            profiling: a.profile.is_some(),
            loss_every: a.loss_every,
        };
        let r = run_bench(&o, &chosen.device)?;
        println!("{}", result_line(&o, &r, backend));
    }
    if let Some(p) = &a.profile {
        // The profiler writes from a background task: give it a moment to drain before exit.
        std::thread::sleep(std::time::Duration::from_secs(2));
        eprintln!("[lmtrain] per-kernel profile written to {}", p.display());
    }
    Ok(())
}

fn warmup_command(a: WarmupArgs) -> Result<()> {
    let w = crate::run::warmup(&a.config, &a.set, a.steps)?;
    eprintln!(
        "warmup done in {:.1} s (first step {:.1} s); the kernel cache {} now holds {:.1} MiB",
        w.seconds,
        w.first_step_seconds.unwrap_or(f64::NAN),
        w.cache.dir.display(),
        w.cache_bytes as f64 / (1u64 << 20) as f64
    );
    Ok(())
}

fn train_command(args: TrainArgs) -> Result<()> {
    let req = TrainRequest {
        config: args.config,
        overrides: args.set,
        resume: args.resume,
        accept_data_change: args.accept_data_change,
    };
    let kind = crate::run::request_kind(&req)?;
    if args.dump_config {
        let text = match kind {
            crate::config::TaskKind::Lm => resolve_request(&req)?.0.to_toml()?,
            crate::config::TaskKind::Bc => crate::bc::run::resolve_bc_request(&req)?.0.to_toml()?,
        };
        print!("{text}");
        return Ok(());
    }
    let (run_dir, outcome) = match kind {
        crate::config::TaskKind::Lm => run_training(&req)?,
        crate::config::TaskKind::Bc => crate::bc::run::run_bc_training(&req)?,
    };
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
    use crate::sample::{load_source, Decoding};
    crate::kernel_cache::configure(None)?;
    let chosen = choose_device(DeviceChoice::parse(&args.device)?)?;
    eprintln!("device: {}", chosen.description);
    let model = load_source(&args.source.source(args.ema)?, chosen.device)?;
    eprintln!("{}", model.description);
    let prompt = model.tokenizer.encode(&args.prompt)?;
    let d = Decoding {
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
    };
    let start = std::time::Instant::now();
    let ids = model.generate_with(&prompt, args.tokens, &d, !args.no_kv_cache)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "generated {} tokens in {secs:.2} s ({:.0} tokens/s, {})",
        ids.len(),
        ids.len() as f64 / secs.max(1e-9),
        if args.no_kv_cache {
            "no KV cache"
        } else {
            "KV cache"
        }
    );
    let text = model.tokenizer.decode(&ids)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("cannot write to stdout")?;
    Ok(())
}

fn export_command(args: ExportArgs) -> Result<()> {
    use crate::interop::host_model::HostModel;
    let model = HostModel::from_checkpoint(&args.checkpoint, args.ema)?;
    let summary = crate::interop::export::export(&model, &args.out)?;
    eprintln!(
        "exported {} to {} ({})",
        model.description,
        summary.out.display(),
        summary.files.join(", ")
    );
    Ok(())
}

fn logits_command(args: LogitsArgs) -> Result<()> {
    use crate::device::{choose_device, DeviceChoice};
    use crate::interop::logits_report::{parse_tokens, report};
    let chosen = choose_device(DeviceChoice::parse(&args.device)?)?;
    eprintln!("device: {}", chosen.description);
    let model = crate::sample::load_source(&args.source.source(args.ema)?, chosen.device)?;
    eprintln!("{}", model.description);
    let tokens = match (&args.tokens, &args.text) {
        (Some(t), None) => parse_tokens(t)?,
        (None, Some(text)) => model.tokenizer.encode(text)?,
        _ => bail!("give exactly one of --tokens and --text"),
    };
    let json = report(&model, &tokens, args.greedy)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}").context("cannot write to stdout")?;
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

#[cfg(feature = "cuda")]
fn check_nccl_command(a: CheckNcclArgs) -> Result<()> {
    crate::bench::check_nccl::run(&crate::bench::check_nccl::CheckNcclOptions {
        devices: a.devices,
        mib: a.mib,
        iters: a.iters,
    })
}

#[cfg(not(feature = "cuda"))]
fn check_nccl_command(_a: CheckNcclArgs) -> Result<()> {
    anyhow::bail!("check-nccl needs a build with the `cuda` feature (the default)")
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

    #[test]
    fn a_model_comes_from_exactly_one_source() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["lmtrain", "sample", "--prompt", "x"][..], args].concat())
        };
        assert!(parse(&["--checkpoint", "r"]).is_ok());
        assert!(parse(&["--hf", "d"]).is_ok());
        assert!(parse(&[]).is_err());
        assert!(parse(&["--checkpoint", "r", "--hf", "d"]).is_err());
        assert!(parse(&["--hf", "d", "--ema"]).is_err());
        let logits = |args: &[&str]| {
            Cli::try_parse_from([&["lmtrain", "logits", "--hf", "d"][..], args].concat())
        };
        assert!(logits(&["--tokens", "1,2"]).is_ok());
        assert!(logits(&["--text", "hi"]).is_ok());
        assert!(logits(&[]).is_err());
        assert!(logits(&["--tokens", "1", "--text", "hi"]).is_err());
    }
}
