//! The behaviour-cloning config (`[task] kind = "bc"`, `configs/bc/`): the shared training tables
//! with BC's defaults, and `[data]`, `[policy]` and `[eval]` of its own. No `[model]` or
//! `[tokenizer]`; unknown keys are errors as everywhere.
//!
//! The defaults are ours, documented in `configs/bc/walker2d.toml`: AdamW at 1e-3 with no weight
//! decay, 500 warm-up steps then a constant rate (no decay: the paper's point is what happens
//! before a cooldown), clipping at 1.0, batch 256, 100k steps, the paper's polynomial EMA with
//! κ = 0.5 after a burn-in of 1,000 steps.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::schema::{
    validate_loop_tables, CheckpointConfig, EmaConfig, EmaKind, LoopConfig, LoopParts, OptimConfig,
    ScheduleConfig, ScheduleKind, TrainConfig,
};
use super::task::{TaskConfig, TaskKind};

/// A behaviour-cloning run's configuration, as written to `config.toml` in the run directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BcConfig {
    /// "auto" | "cpu" | "cuda" | "cuda:N"; small policies at batch 256 run best on the CPU.
    ///
    /// Or a list for data-parallel training: `["cuda:0", "cuda:1"]`, one worker per device;
    /// for tests, `["cpu", "cpu"]` simulates two workers on the CPU
    /// ([`crate::device::DeviceSetting`]).
    #[serde(default = "default_device")]
    pub device: crate::device::DeviceSetting,
    pub task: TaskConfig,
    /// Expert shards to clone (absent for the linear-system testbed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BcDataConfig>,
    /// The paper's linear-system testbed instead of expert shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<LinearConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default = "bc_optim")]
    pub optim: OptimConfig,
    #[serde(default = "bc_schedule")]
    pub schedule: ScheduleConfig,
    #[serde(default = "bc_ema")]
    pub ema: EmaConfig,
    #[serde(default = "bc_train")]
    pub train: TrainConfig,
    #[serde(default)]
    pub eval: BcEvalConfig,
    #[serde(default = "bc_checkpoint")]
    pub checkpoint: CheckpointConfig,
}

fn default_device() -> crate::device::DeviceSetting {
    "cpu".into()
}

/// AdamW at 1e-3, (0.9, 0.999), no weight decay, clipping at 1.0.
pub fn bc_optim() -> OptimConfig {
    OptimConfig {
        kind: Default::default(),
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        grad_clip: 1.0,
        grad_accum: 1,
    }
}

/// 500 warm-up steps, then constant.
pub fn bc_schedule() -> ScheduleConfig {
    ScheduleConfig {
        kind: ScheduleKind::Constant,
        warmup_steps: 500,
        decay_steps: 0,
        stable_steps: 0,
        min_lr: 0.0,
    }
}

/// The paper's β_t = (ρ + t − t₀)^(−κ) with κ = 0.5, ρ = 10, t₀ = 1,000.
pub fn bc_ema() -> EmaConfig {
    EmaConfig {
        enabled: true,
        kind: EmaKind::Poly,
        power: 0.5,
        offset: 10.0,
        burn_in: 1000,
        min_beta: 0.0,
        decay: 0.999,
        every: 1,
    }
}

/// 100k steps at batch 256.
pub fn bc_train() -> TrainConfig {
    TrainConfig {
        max_steps: 100_000,
        batch_size: 256,
        seed: 0,
        out_dir: "runs".into(),
        run_name: None,
        log_every: 100,
        on_nonfinite: Default::default(),
        rollback_lr_factor: 0.5,
        max_rollbacks: 3,
        step_timeout_s: None,
    }
}

fn bc_checkpoint() -> CheckpointConfig {
    CheckpointConfig {
        every: 5000,
        keep_last: 3,
    }
}

/// `[data]`: the shards `lmtrain expert collect` writes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BcDataConfig {
    /// Train shards (`train-*.parquet`); relative paths resolve against the config file.
    pub train_glob: String,
    /// Validation shards (`validation-*.parquet`).
    pub val_glob: String,
    /// How many train episodes to use, the first ones by episode index (absent: all), for the
    /// data-size sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episodes: Option<usize>,
    /// The expert whose actions the rollouts' action error is measured against (absent: the one
    /// named in the data's `dataset.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert: Option<String>,
    /// Floor on each observation dimension's standard deviation in the normalisation, so that a
    /// constant dimension is not divided by zero.
    #[serde(default = "default_std_floor")]
    pub obs_std_floor: f64,
}

fn default_std_floor() -> f64 {
    1e-3
}

/// `[policy] kind`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// A fully connected network on the current observation.
    #[default]
    Mlp,
    /// u = K x, no bias, no squash: the linear-system testbed's policy.
    Linear,
    /// The project's GPT blocks over the last `history` observations (causal attention, a
    /// linear embedding in, a linear head out, tanh scaled to the bounds), the loss on every
    /// position.
    Transformer,
}

/// `[linear]`: the paper's theory vignette (Block et al. 2024, §3): x_{t+1} = A x_t + u_t with
/// the expert u = K* x, A + K* orthogonal (marginally stable), expert labels with Gaussian noise.
/// The data are generated in memory from `system_seed` and `train.seed`;
/// `../shared/reference/linear_gva_toy.py` is the numpy original.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// State (and control) dimension d.
    #[serde(default = "default_linear_dim")]
    pub dim: usize,
    /// Standard deviation of the label noise added to each expert action coordinate.
    #[serde(default = "default_linear_noise")]
    pub noise: f64,
    /// Training pairs (x ~ N(0, I), noisy u), generated once.
    #[serde(default = "default_linear_samples")]
    pub samples: usize,
    /// Validation pairs for the BC loss.
    #[serde(default = "default_linear_val_samples")]
    pub val_samples: usize,
    /// Scale of A's Gaussian entries (A = scale·N(0, 1)^{d×d}; K* = Q − A).
    #[serde(default = "default_linear_a_scale")]
    pub a_scale: f64,
    /// Seed of the system (Q, A) and of the rollouts' fixed unit-norm start x₀.
    #[serde(default)]
    pub system_seed: u64,
}

fn default_linear_dim() -> usize {
    8
}
fn default_linear_noise() -> f64 {
    0.5
}
fn default_linear_samples() -> usize {
    200_000
}
fn default_linear_val_samples() -> usize {
    512
}
fn default_linear_a_scale() -> f64 {
    0.3
}

/// The hidden layers' nonlinearity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyActivation {
    /// Exact (erf) GELU.
    #[default]
    Gelu,
    Relu,
    Tanh,
}

/// `[policy]`. Written out (a run's config.toml, `--dump-config`) with only the keys of its
/// kind: a transformer's or the linear testbed's leaves out the MLP's `hidden` and
/// `activation`, which they ignore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, into = "PolicyToml")]
pub struct PolicyConfig {
    #[serde(default)]
    pub kind: PolicyKind,
    /// Hidden widths; the output is tanh-squashed and scaled to the action bounds.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: PolicyActivation,
    /// Transformer blocks (`kind = "transformer"` only, like the three keys below; filled with
    /// its default when absent, so the resolved config records every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_layer: Option<usize>,
    /// Attention heads per block (must divide `n_embd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_head: Option<usize>,
    /// Width of the residual stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_embd: Option<usize>,
    /// Observations the transformer sees: the current one and the `history − 1` before it,
    /// zero-padded (in normalised units, i.e. the mean observation) at an episode's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<usize>,
}

/// How [`PolicyConfig`] is written: the keys of its kind only.
#[derive(Serialize)]
struct PolicyToml {
    kind: PolicyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activation: Option<PolicyActivation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n_layer: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n_head: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n_embd: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<usize>,
}

impl From<PolicyConfig> for PolicyToml {
    fn from(p: PolicyConfig) -> Self {
        let mlp = p.kind == PolicyKind::Mlp;
        Self {
            kind: p.kind,
            hidden: mlp.then_some(p.hidden),
            activation: mlp.then_some(p.activation),
            n_layer: p.n_layer,
            n_head: p.n_head,
            n_embd: p.n_embd,
            history: p.history,
        }
    }
}

/// The longest `policy.history`: the locomotion environments' time limit.
pub const MAX_HISTORY: usize = 1000;

/// The transformer policy's dimensions (`[policy]` keys, defaults filled in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransformerDims {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub history: usize,
}

impl PolicyConfig {
    /// The transformer's dimensions, each key's default (ours: 2 blocks, 2 heads, width 64, 8
    /// observations) where absent.
    pub fn transformer_dims(&self) -> TransformerDims {
        TransformerDims {
            n_layer: self.n_layer.unwrap_or(2),
            n_head: self.n_head.unwrap_or(2),
            n_embd: self.n_embd.unwrap_or(64),
            history: self.history.unwrap_or(8),
        }
    }

    /// For `kind = "transformer"`, writes the defaults into absent keys (so that `config.toml`
    /// and checkpoints record the dimensions used); for the other kinds, refuses the
    /// transformer's keys, which they would silently ignore.
    pub fn resolve(&mut self) -> Result<()> {
        if self.kind == PolicyKind::Transformer {
            let d = self.transformer_dims();
            self.n_layer = Some(d.n_layer);
            self.n_head = Some(d.n_head);
            self.n_embd = Some(d.n_embd);
            self.history = Some(d.history);
            return Ok(());
        }
        for (key, v) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("history", self.history),
        ] {
            if v.is_some() {
                bail!(
                    "policy.{key} belongs to the transformer policy; remove it, or set policy.kind = \"transformer\""
                );
            }
        }
        Ok(())
    }
}

fn default_hidden() -> Vec<usize> {
    vec![256, 256, 256]
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            kind: PolicyKind::Mlp,
            hidden: default_hidden(),
            activation: PolicyActivation::Gelu,
            n_layer: None,
            n_head: None,
            n_embd: None,
            history: None,
        }
    }
}

/// `[eval]`: the BC loss on the validation episodes and the rollouts (the long-horizon
/// evaluation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BcEvalConfig {
    /// Steps between validation BC losses (raw and EMA).
    #[serde(default = "default_val_every")]
    pub val_every: u64,
    /// Steps between rollout evaluations of the raw and EMA policies (0: none). Each also
    /// computes both validation losses, so the statistics can pair them.
    #[serde(default = "default_rollout_every")]
    pub rollout_every: u64,
    /// Episodes per rollout evaluation (per weights), the same starts every time.
    #[serde(default = "default_rollouts")]
    pub rollouts: usize,
    /// Steps per episode at most (≤ the environment's time limit of 1,000).
    #[serde(default = "default_horizon")]
    pub horizon: usize,
    /// Reset seeds `rollout_seed, rollout_seed + 1, …`; must not overlap the dataset's
    /// collection seeds (checked at start).
    #[serde(default = "default_rollout_seed")]
    pub rollout_seed: u64,
    /// The linear testbed's rollout horizons H: `rollout_cost_h<H>_<weights>` is the mean of
    /// ‖x_t‖² over t = 1..H from the fixed start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub horizons: Vec<usize>,
}

fn default_val_every() -> u64 {
    1000
}
fn default_rollout_every() -> u64 {
    2000
}
fn default_rollouts() -> usize {
    16
}
fn default_horizon() -> usize {
    1000
}
fn default_rollout_seed() -> u64 {
    10_000_000
}

impl Default for BcEvalConfig {
    fn default() -> Self {
        Self {
            val_every: default_val_every(),
            rollout_every: default_rollout_every(),
            rollouts: default_rollouts(),
            horizon: default_horizon(),
            rollout_seed: default_rollout_seed(),
            horizons: Vec::new(),
        }
    }
}

impl BcConfig {
    /// Loads `file`, applies `--set` overrides, validates, and makes the paths absolute
    /// (against the file's directory; `--set` ones against the current directory). Returns the
    /// config and the file's stem.
    pub fn load(file: &Path, overrides: &[String]) -> Result<(Self, String)> {
        let (mut config, name): (Self, String) = super::load::load_typed(file, overrides)?;
        config
            .policy
            .resolve()
            .and_then(|()| config.validate())
            .with_context(|| {
                format!("in config file {} (after --set overrides)", file.display())
            })?;
        let r = |v: &str| super::load::resolve_against_file(file, v);
        if let Some(data) = config.data.as_mut() {
            data.train_glob = r(&data.train_glob)?;
            data.val_glob = r(&data.val_glob)?;
            if let Some(e) = &data.expert {
                data.expert = Some(r(e)?);
            }
        }
        config.train.out_dir = r(&config.train.out_dir)?;
        Ok((config, name))
    }

    /// Reads a run directory's `config.toml` (paths already absolute).
    pub fn from_run_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
            .with_context(|| format!("in {}", path.display()))?;
        config
            .policy
            .resolve()
            .and_then(|()| config.validate())
            .with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    /// Semantic checks that serde cannot express; each message names the key and the fix.
    pub fn validate(&self) -> Result<()> {
        use super::ranges::{check, check_int};
        if self.task.kind != TaskKind::Bc {
            bail!("task.kind must be \"bc\" in a behaviour-cloning config");
        }
        match (&self.data, &self.linear) {
            (Some(data), None) => {
                if let Some(n) = data.episodes {
                    check_int("data.episodes", n as u64)?;
                }
                check("data.obs_std_floor", data.obs_std_floor)?;
                if self.policy.kind == PolicyKind::Linear {
                    bail!("policy.kind = \"linear\" is the linear testbed's policy; clone expert data with policy.kind = \"mlp\" or \"transformer\"");
                }
            }
            (None, Some(l)) => {
                check_int("linear.dim", l.dim as u64)?;
                check("linear.noise", l.noise)?;
                check_int("linear.samples", l.samples as u64)?;
                check_int("linear.val_samples", l.val_samples as u64)?;
                check("linear.a_scale", l.a_scale)?;
                if self.policy.kind != PolicyKind::Linear {
                    bail!("the linear testbed ([linear]) fits a linear policy: set policy.kind = \"linear\"");
                }
                if self.eval.horizons.is_empty() {
                    bail!("the linear testbed needs eval.horizons, e.g. [10, 100]");
                }
                for &h in &self.eval.horizons {
                    check_int("eval.horizons", h as u64)?;
                }
            }
            (Some(_), Some(_)) => bail!(
                "a BC config has [data] (expert shards) or [linear] (the linear-system testbed), not both"
            ),
            (None, None) => bail!(
                "a BC config needs [data] with train_glob and val_glob (shards from `lmtrain expert collect`), or [linear] for the linear-system testbed"
            ),
        }
        if self.policy.kind == PolicyKind::Transformer {
            let d = self.policy.transformer_dims();
            super::ranges::check_attention_dims("policy", d.n_layer, d.n_head, d.n_embd)?;
            check_int("policy.history", d.history as u64)?;
            // Longer windows than an episode only add padding (the five environments' time
            // limit is 1,000 steps), at a cost quadratic in the window.
            if d.history > MAX_HISTORY {
                bail!(
                    "policy.history = {} is longer than an episode ({MAX_HISTORY} steps at most); windows of 8–64 observations are typical",
                    d.history
                );
            }
            let defaults = PolicyConfig::default();
            if self.policy.hidden != defaults.hidden
                || self.policy.activation != defaults.activation
            {
                bail!(
                    "policy.hidden and policy.activation belong to the MLP policy; the transformer's keys are n_layer, n_head, n_embd and history"
                );
            }
        }
        if self.policy.hidden.is_empty() {
            bail!("policy.hidden is empty: give at least one hidden width, e.g. [256, 256, 256]");
        }
        for &h in &self.policy.hidden {
            check_int("policy.hidden", h as u64)?;
        }
        validate_loop_tables(&LoopParts {
            optim: &self.optim,
            schedule: &self.schedule,
            ema: &self.ema,
            train: &self.train,
            checkpoint: &self.checkpoint,
        })?;
        check_int("eval.val_every", self.eval.val_every)?;
        check_int("eval.rollouts", self.eval.rollouts as u64)?;
        check_int("eval.horizon", self.eval.horizon as u64)?;
        self.device.plan()?;
        Ok(())
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot serialize the BC config")
    }

    /// What the training loop reads of this config.
    pub fn loop_config(&self) -> Result<LoopConfig> {
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

    /// Keys whose values differ, excluding those a resume may change: `train.max_steps`,
    /// `train.log_every`, the `train.on_nonfinite` keys, `device`, `checkpoint.*` and `eval.*`.
    pub fn incompatible_keys(&self, other: &Self) -> Result<Vec<String>> {
        super::load::incompatible_keys(self, other, &Self::RESUMABLE.0, &Self::RESUMABLE.1)
    }

    /// Keys and tables a resume may change (the rest must equal the run's).
    pub const RESUMABLE: ([&'static str; 7], [&'static str; 2]) = (
        [
            "train.max_steps",
            "train.log_every",
            "train.on_nonfinite",
            "train.rollback_lr_factor",
            "train.max_rollbacks",
            "train.step_timeout_s",
            "device",
        ],
        ["checkpoint", "eval"],
    );
}
