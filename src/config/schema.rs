//! The config schema: one struct per TOML table, with defaults and semantic checks.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::Activation;

/// The whole run configuration, as written to `config.toml` in the run directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// "auto" | "cpu" | "cuda" | "cuda:N".
    ///
    /// Or a list for data-parallel training: `["cuda:0", "cuda:1"]`, one worker per device;
    /// for tests, `["cpu", "cpu"]` simulates two workers on the CPU
    /// ([`crate::device::DeviceSetting`]).
    #[serde(default = "default_device")]
    pub device: crate::device::DeviceSetting,
    /// `[task] kind` (language modelling here; `configs/bc/` configs are behaviour cloning).
    #[serde(default)]
    pub task: super::task::TaskConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub tokenizer: TokenizerConfig,
    pub data: DataConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub ema: EmaConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
}

fn default_device() -> crate::device::DeviceSetting {
    "auto".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    #[serde(default)]
    pub dropout: f64,
    /// The model's vocabulary; may exceed the tokenizer's (padding rows are never sampled).
    pub vocab_size: usize,
    /// The MLP's GELU: "gelu" (exact erf, the default) or "gelu_new" (tanh approximation, as in
    /// Hugging Face GPT-2 checkpoints; for fine-tuning those).
    #[serde(default)]
    pub activation: Activation,
    /// Attention, LayerNorm, the linears' bias adds and the loss as single ops with hand-written
    /// backward passes, and the token embedding as a gather ([`crate::model::Compute::all_fused`]): the same function
    /// up to float rounding, with less memory kept for the backward pass.
    #[serde(default)]
    pub fused_ops: bool,
    /// Every matmul's operands cast to bf16 and the products back to f32
    /// ([`crate::model::Compute::bf16_matmuls`]): not the same function (operands rounded to 8
    /// significant bits), for tensor-core speed on a GPU. Default false.
    #[serde(default)]
    pub bf16_matmuls: bool,
    /// Causal attention's forward pass by the backend's own attention kernel
    /// ([`crate::model::Compute::flash_attention`]): the same function up to rounding. Default
    /// false.
    #[serde(default)]
    pub flash_attention: bool,
    /// The GEMM behind the linears and the LM head: "burn" (the default) or "cublaslt" (bf16
    /// operands, f32 accumulation, the bias add and bias gradient fused into the GEMMs; CUDA
    /// only, elsewhere the log says burn's matmul is used). [`crate::model::cublaslt::MatmulRoute`].
    #[serde(default)]
    pub matmul: crate::model::cublaslt::MatmulRoute,
    /// Initial weights instead of a random init: "hf:DIR", a Hugging Face GPT-2 directory
    /// (config.json, model.safetensors, tokenizer.json). Relative DIRs resolve against the config
    /// file's directory. The other model keys must agree with DIR's config.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
}

impl ModelConfig {
    /// How the model is computed: `fused_ops` switches on [`crate::model::Compute::all_fused`],
    /// and `bf16_matmuls` and `flash_attention` their own alternatives.
    pub fn compute(&self) -> crate::model::Compute {
        let mut c = if self.fused_ops {
            crate::model::Compute::all_fused()
        } else {
            crate::model::Compute::default()
        };
        c.bf16_matmuls = self.bf16_matmuls;
        c.flash_attention = self.flash_attention;
        c.cublaslt = self.matmul == crate::model::cublaslt::MatmulRoute::Cublaslt;
        c
    }

    /// [`ModelConfig::compute`] as it runs on `backend` ([`crate::device::ChosenDevice::backend`]):
    /// `model.matmul = "cublaslt"` resolved by [`crate::model::cublaslt::route::resolve`] (off
    /// CUDA, or without the library, burn's matmul), with the log line that says which.
    pub fn compute_on(&self, backend: &str) -> (crate::model::Compute, Option<String>) {
        let mut c = self.compute();
        let (cublaslt, note) = crate::model::cublaslt::route::resolve(self.matmul, backend);
        c.cublaslt = cublaslt;
        (c, note)
    }

    /// The compute line of a run's log.
    pub fn describe_compute(&self) -> String {
        let mut parts = vec![if self.fused_ops {
            "fused ops (attention, LayerNorm, cross-entropy with closed-form backward; gather embedding)"
        } else {
            "burn's plain ops"
        }
        .to_string()];
        if self.bf16_matmuls {
            parts.push("bf16 matmul operands (f32 products)".into());
        }
        if self.flash_attention {
            parts.push("the backend's attention kernel for causal attention's forward pass".into());
        }
        if self.matmul == crate::model::cublaslt::MatmulRoute::Cublaslt {
            parts.push("model.matmul = \"cublaslt\" (bf16 operands, f32 accumulation, fused bias; CUDA only: the next line says whether this run uses it)".into());
        }
        parts.join("; ")
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    /// A tokenizer.json; relative paths resolve against the config file's directory.
    /// Absent: the tokenizer lives in the run directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Vocabulary size when lmtrain trains the tokenizer.
    #[serde(default = "default_tokenizer_vocab")]
    pub vocab_size: usize,
}

fn default_tokenizer_vocab() -> usize {
    4096
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub train_glob: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_glob: Option<String>,
    #[serde(default = "default_text_column")]
    pub text_column: String,
    #[serde(default)]
    pub prepend_title: bool,
    /// Fraction of documents held out (by a hash of the text) when there is no `val_glob`.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Documents used to train a tokenizer (a prefix of the shards in order).
    #[serde(default = "default_tokenizer_docs")]
    pub tokenizer_docs: usize,
}

fn default_text_column() -> String {
    "text".into()
}
fn default_val_fraction() -> f64 {
    0.01
}
fn default_tokenizer_docs() -> usize {
    50_000
}

/// `optim.kind`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// AdamW with decoupled weight decay (`torch.optim.AdamW`).
    #[default]
    Adamw,
    /// Plain SGD, no momentum: θ ← θ − lr·g (weight decay still decoupled). The paper's theory
    /// and its linear-system vignette use it; beta1, beta2 and eps are then unused.
    Sgd,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// "adamw" (the default) or "sgd".
    #[serde(default)]
    pub kind: OptimKind,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Global-norm clipping threshold; 0 disables.
    pub grad_clip: f64,
    pub grad_accum: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: OptimKind::Adamw,
            lr: 6e-4,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_clip: 1.0,
            grad_accum: 1,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Cosine,
    Linear,
    Wsd,
    Constant,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// Absolute step counts, never fractions of max_steps, so a resumed run with a larger
    /// max_steps sees the same learning rates.
    pub warmup_steps: u64,
    pub decay_steps: u64,
    /// Steps at the peak lr between warmup and decay (wsd only).
    #[serde(default)]
    pub stable_steps: u64,
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Cosine,
            warmup_steps: 100,
            decay_steps: 5000,
            stable_steps: 0,
            min_lr: 6e-5,
        }
    }
}

/// `ema.kind`: how β_t is scheduled, and whether the evaluated weights are bias-corrected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EmaKind {
    /// β_t = max(min_beta, (ρ + t − t₀)^(−κ)).
    Poly,
    /// β = 1 − decay.
    Constant,
    /// Bias-corrected EMA (BEMA; Block & Zhang 2025, arXiv 2508.00180): the run evaluates
    /// α_t(θ_t − θ₀) + EMA_t with α_t = (ρ + γ(t − t₀))^(−η), over the EMA with
    /// β_t = max(min_beta, (ρ + γ(t − t₀))^(−κ)) (see [`crate::train::ema`]).
    Bema {
        /// η, `ema.bias_power` (default 0.2, as in the author code).
        bias_power: f64,
        /// γ, `ema.multiplier` (default 1, as in the author code).
        multiplier: f64,
    },
}

/// `ema.bias_power` when `kind = "bema"` does not give it.
pub const DEFAULT_BIAS_POWER: f64 = 0.2;
/// `ema.multiplier` when `kind = "bema"` does not give it.
pub const DEFAULT_MULTIPLIER: f64 = 1.0;

impl EmaKind {
    /// BEMA with the default η and γ.
    pub const BEMA: EmaKind = EmaKind::Bema {
        bias_power: DEFAULT_BIAS_POWER,
        multiplier: DEFAULT_MULTIPLIER,
    };
}

/// `[ema]`. The TOML table is [`EmaTable`]: `bias_power` and `multiplier` live in
/// [`EmaKind::Bema`], as only that kind reads them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(try_from = "EmaTable", into = "EmaTable")]
pub struct EmaConfig {
    pub enabled: bool,
    pub kind: EmaKind,
    /// κ in β_t = (ρ + t − t₀)^(−κ) (BEMA: (ρ + γ(t − t₀))^(−κ)).
    pub power: f64,
    /// ρ (BEMA: also in α_t).
    pub offset: f64,
    /// t₀: for t ≤ t₀ the EMA equals the iterate (and BEMA's θ₀ follows it).
    pub burn_in: u64,
    pub min_beta: f64,
    /// Constant mode: β = 1 − decay.
    pub decay: f64,
    /// Update on steps divisible by this.
    pub every: u64,
}

/// `ema.kind` as written in TOML.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum EmaKindName {
    Poly,
    Constant,
    Bema,
}

/// The `[ema]` table as written. `bias_power` and `multiplier` are read only when
/// `kind = "bema"`; other kinds range-check and then ignore them (so that `--set ema.kind=poly`
/// works on a BEMA config), and the resolved config writes them for BEMA runs only.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmaTable {
    enabled: bool,
    kind: EmaKindName,
    power: f64,
    offset: f64,
    burn_in: u64,
    min_beta: f64,
    decay: f64,
    every: u64,
    /// η (`kind = "bema"`; default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bias_power: Option<f64>,
    /// γ (`kind = "bema"`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multiplier: Option<f64>,
}

impl TryFrom<EmaTable> for EmaConfig {
    type Error = String;
    fn try_from(t: EmaTable) -> std::result::Result<Self, String> {
        use super::ranges::check;
        for (key, value) in [
            ("ema.bias_power", t.bias_power),
            ("ema.multiplier", t.multiplier),
        ] {
            if let Some(v) = value {
                check(key, v).map_err(|e| e.to_string())?;
            }
        }
        let kind = match t.kind {
            EmaKindName::Poly => EmaKind::Poly,
            EmaKindName::Constant => EmaKind::Constant,
            EmaKindName::Bema => EmaKind::Bema {
                bias_power: t.bias_power.unwrap_or(DEFAULT_BIAS_POWER),
                multiplier: t.multiplier.unwrap_or(DEFAULT_MULTIPLIER),
            },
        };
        Ok(EmaConfig {
            enabled: t.enabled,
            kind,
            power: t.power,
            offset: t.offset,
            burn_in: t.burn_in,
            min_beta: t.min_beta,
            decay: t.decay,
            every: t.every,
        })
    }
}

impl From<EmaConfig> for EmaTable {
    fn from(c: EmaConfig) -> Self {
        let (kind, bias_power, multiplier) = match c.kind {
            EmaKind::Poly => (EmaKindName::Poly, None, None),
            EmaKind::Constant => (EmaKindName::Constant, None, None),
            EmaKind::Bema {
                bias_power,
                multiplier,
            } => (EmaKindName::Bema, Some(bias_power), Some(multiplier)),
        };
        EmaTable {
            enabled: c.enabled,
            kind,
            power: c.power,
            offset: c.offset,
            burn_in: c.burn_in,
            min_beta: c.min_beta,
            decay: c.decay,
            every: c.every,
            bias_power,
            multiplier,
        }
    }
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kind: EmaKind::Poly,
            power: 0.5,
            offset: 10.0,
            burn_in: 100,
            min_beta: 0.0,
            decay: 0.999,
            every: 1,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub max_steps: u64,
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    /// Each run gets its own directory under this one.
    #[serde(default = "default_out_dir")]
    pub out_dir: String,
    /// Name of the run directory; default: the config file's stem and a timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    /// Steps between log lines (train.log, metrics.jsonl, progress).
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// What a non-finite loss or gradient norm does: stop the run (at the next read of the loss),
    /// skip the step (a masked update: weights, moments and EMA unchanged), or roll back to the
    /// last checkpoint with a smaller learning rate.
    #[serde(default)]
    pub on_nonfinite: OnNonfinite,
    /// Each rollback multiplies the learning rate by this factor (in (0, 1]).
    #[serde(default = "default_rollback_lr_factor")]
    pub rollback_lr_factor: f64,
    /// Rollbacks allowed in the run's life; one more stops it.
    #[serde(default = "default_max_rollbacks")]
    pub max_rollbacks: u32,
    /// Seconds an optimizer step may take before the run stops with exit status 3 and a
    /// message naming the late data-parallel worker, instead of hanging in a collective (0:
    /// never). Unset: 1,800 s on a data-parallel run (a list `device`), never on one device.
    /// The first step of each invocation gets ten times as long (kernel compilation and
    /// autotuning). Validation, evaluation and checkpoints are not timed. See
    /// [`crate::train::watchdog`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_s: Option<f64>,
}

impl TrainConfig {
    /// `train.step_timeout_s` in effect for a run of `workers` data-parallel workers: `None`
    /// when the watchdog is off.
    pub fn step_timeout(&self, workers: usize) -> Option<std::time::Duration> {
        let secs = match self.step_timeout_s {
            Some(s) => s,
            None if workers > 1 => DEFAULT_STEP_TIMEOUT_S,
            None => 0.0,
        };
        (secs > 0.0 && secs.is_finite()).then(|| std::time::Duration::from_secs_f64(secs))
    }
}

/// `train.step_timeout_s` of a data-parallel run that does not set it: long enough for any
/// step lmtrain's configs take on one GPU (seconds), short enough to end a hung overnight run.
pub const DEFAULT_STEP_TIMEOUT_S: f64 = 1800.0;

/// `train.on_nonfinite`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnNonfinite {
    #[default]
    Stop,
    Skip,
    Rollback,
}

fn default_rollback_lr_factor() -> f64 {
    0.5
}
fn default_max_rollbacks() -> u32 {
    3
}

fn default_out_dir() -> String {
    "runs".into()
}
fn default_log_every() -> u64 {
    10
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Steps between validation losses (raw and EMA); 1 gives every-iterate validation.
    pub val_every: u64,
    /// Fixed validation windows of block_size+1 tokens.
    pub val_windows: usize,
    /// Steps between long-generation evaluations of the raw and EMA weights (0: none). Each
    /// also computes both validation losses, so the statistics can pair them.
    #[serde(default)]
    pub generate_every: u64,
    /// Prompts per evaluation.
    #[serde(default = "default_num_prompts")]
    pub num_prompts: usize,
    /// Prompt length in tokens, taken from the start of fixed validation documents.
    #[serde(default = "default_prompt_tokens")]
    pub prompt_tokens: usize,
    /// Literal prompts used instead of validation documents, when given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// New tokens per generation (may exceed block_size).
    #[serde(default = "default_generate_tokens")]
    pub generate_tokens: usize,
    /// Sampling temperature of the sampled generations (greedy ones are always made too).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Top-k of the sampled generations (0: all tokens).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Sampled generations per prompt, with seeds 0..sample_seeds, the same at every evaluation.
    #[serde(default = "default_sample_seeds")]
    pub sample_seeds: u64,
    /// Score generations with the synthetic corpus's constraint checker (`gen_valid_*`).
    #[serde(default)]
    pub story_checker: bool,
    /// An lmtrain checkpoint (file or run directory) with the same tokenizer, whose per-token
    /// NLL of every continuation is logged as `gen_judge_nll_*`: the LM analogue of the paper's
    /// rollout reward. Absent: no judge, and those keys are absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_checkpoint: Option<String>,
}

fn default_num_prompts() -> usize {
    8
}
fn default_prompt_tokens() -> usize {
    16
}
fn default_generate_tokens() -> usize {
    256
}
fn default_temperature() -> f64 {
    0.8
}
fn default_top_k() -> usize {
    50
}
fn default_sample_seeds() -> u64 {
    1
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            val_every: 100,
            val_windows: 64,
            generate_every: 0,
            num_prompts: default_num_prompts(),
            prompt_tokens: default_prompt_tokens(),
            prompts: Vec::new(),
            generate_tokens: default_generate_tokens(),
            temperature: default_temperature(),
            top_k: default_top_k(),
            sample_seeds: default_sample_seeds(),
            story_checker: false,
            judge_checkpoint: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    pub every: u64,
    pub keep_last: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: 1000,
            keep_last: 3,
        }
    }
}

impl Config {
    /// Semantic checks that serde cannot express. Each message names the key and the fix.
    pub fn validate(&self) -> Result<()> {
        use super::ranges::{check, check_int};
        let m = &self.model;
        super::ranges::check_attention_dims("model", m.n_layer, m.n_head, m.n_embd)?;
        check_int("model.block_size", m.block_size as u64)?;
        check("model.dropout", m.dropout)?;
        check_int("model.vocab_size", m.vocab_size as u64)?;
        if let Some(init) = &m.init_from {
            if crate::interop::init_from::parse_init_from(init).is_none() {
                bail!(
                    "model.init_from = {init:?}: write \"hf:DIR\" with DIR a Hugging Face GPT-2 directory"
                );
            }
        }
        check_int("tokenizer.vocab_size", self.tokenizer.vocab_size as u64)?;
        check("data.val_fraction", self.data.val_fraction)?;
        check_int("data.tokenizer_docs", self.data.tokenizer_docs as u64)?;
        if self.data.val_glob.is_none() && self.data.val_fraction == 0.0 {
            bail!("data.val_fraction is 0 and there is no data.val_glob: nothing to validate on; set one of them");
        }
        if self.task.kind != super::task::TaskKind::Lm {
            bail!(
                "task.kind = \"{}\" needs that task's config (see configs/bc/), not a language-model one",
                self.task.kind.as_str()
            );
        }
        validate_loop_tables(&self.loop_parts())?;
        let ev = &self.eval;
        check_int("eval.val_every", ev.val_every)?;
        check_int("eval.val_windows", ev.val_windows as u64)?;
        if ev.generate_every > 0 && (ev.num_prompts == 0 || ev.generate_tokens == 0) {
            bail!("eval.num_prompts and eval.generate_tokens must be ≥ 1 when eval.generate_every > 0");
        }
        if ev.generate_every > 0
            && (ev.prompt_tokens == 0 || ev.prompt_tokens >= self.model.block_size)
        {
            bail!(
                "eval.prompt_tokens = {} must be in [1, model.block_size = {})",
                ev.prompt_tokens,
                self.model.block_size
            );
        }
        check("eval.temperature", ev.temperature)?;
        self.device.plan()?;
        Ok(())
    }

    fn loop_parts(&self) -> LoopParts<'_> {
        LoopParts {
            optim: &self.optim,
            schedule: &self.schedule,
            ema: &self.ema,
            train: &self.train,
            checkpoint: &self.checkpoint,
        }
    }

    /// What the training loop reads of this config.
    pub fn loop_config(&self) -> anyhow::Result<LoopConfig> {
        Ok(LoopConfig {
            optim: self.optim.clone(),
            schedule: self.schedule.clone(),
            ema: self.ema.clone(),
            train: self.train.clone(),
            checkpoint: self.checkpoint.clone(),
            val_every: self.eval.val_every,
            toml: self.to_toml()?,
        })
    }
}

/// The tables every task's config shares, borrowed for validation.
pub(super) struct LoopParts<'a> {
    pub optim: &'a OptimConfig,
    pub schedule: &'a ScheduleConfig,
    pub ema: &'a EmaConfig,
    pub train: &'a TrainConfig,
    pub checkpoint: &'a CheckpointConfig,
}

/// Checks of the shared tables (`[optim]`, `[schedule]`, `[ema]`, `[train]`, `[checkpoint]`).
pub(super) fn validate_loop_tables(p: &LoopParts) -> Result<()> {
    use super::ranges::{check, check_int};
    let o = p.optim;
    check("optim.lr", o.lr)?;
    check("optim.beta1", o.beta1)?;
    check("optim.beta2", o.beta2)?;
    check("optim.eps", o.eps)?;
    check("optim.weight_decay", o.weight_decay)?;
    check("optim.grad_clip", o.grad_clip)?;
    check_int("optim.grad_accum", o.grad_accum as u64)?;
    check("schedule.min_lr", p.schedule.min_lr)?;
    if p.schedule.min_lr > o.lr {
        bail!(
            "schedule.min_lr = {} must be in [0, optim.lr = {}]",
            p.schedule.min_lr,
            o.lr
        );
    }
    let e = p.ema;
    check_int("ema.every", e.every)?;
    check("ema.power", e.power)?;
    check("ema.offset", e.offset)?;
    check("ema.min_beta", e.min_beta)?;
    check("ema.decay", e.decay)?;
    if let EmaKind::Bema {
        bias_power,
        multiplier,
    } = e.kind
    {
        check("ema.bias_power", bias_power)?;
        check("ema.multiplier", multiplier)?;
    }
    let t = p.train;
    check_int("train.batch_size", t.batch_size as u64)?;
    check_int("train.max_steps", t.max_steps)?;
    check_int("train.log_every", t.log_every)?;
    check("train.rollback_lr_factor", t.rollback_lr_factor)?;
    if let Some(s) = t.step_timeout_s {
        check("train.step_timeout_s", s)?;
    }
    check_int("checkpoint.every", p.checkpoint.every)?;
    check_int("checkpoint.keep_last", p.checkpoint.keep_last as u64)?;
    Ok(())
}

/// What the training loop ([`crate::train::train`]) reads of a config, whatever the task: the
/// shared tables, the validation cadence, and the whole config as TOML for the checkpoints.
/// The task's own long-horizon evaluation cadence comes from the task
/// ([`crate::train::Task::evaluate_every`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LoopConfig {
    pub optim: OptimConfig,
    pub schedule: ScheduleConfig,
    pub ema: EmaConfig,
    pub train: TrainConfig,
    pub checkpoint: CheckpointConfig,
    /// Steps between validation losses (raw and EMA).
    pub val_every: u64,
    /// The resolved config file, stored in every checkpoint.
    pub toml: String,
}
