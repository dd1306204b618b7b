//! `lmtrain landscape` for language-model checkpoints: the landscape probe of Block et al. 2024
//! (§4, after Li et al. 2018, "Visualizing the loss landscape of neural nets") with the LM's
//! two yardsticks. Along 1-D slices θ + s·d of a checkpoint's raw or EMA weights, s ∈ [−R, R] at
//! P points, it measures
//!
//! - the validation loss (mean next-token cross-entropy, nats per token) on the first
//!   `--val-windows` of the run's fixed validation windows, by the trainer's own
//!   [`LmTask::val_loss`]; with as many windows as the run's `eval.val_windows`, the centre
//!   (s = 0) is the run's `val_loss_<weights>` at the checkpoint's step;
//! - one generation metric (`--metric`, default greedy story validity) of the run's fixed
//!   prompts and decodings, scored by the trainer's own [`GenerationScorer`]: the centre is the
//!   run's `gen_<metric>_<mode>_<weights>` at that step.
//!
//! The directions ([`crate::landscape`]): N random Gaussian ones and the gradient of the run's
//! first training micro-batch (`train.batch_size` windows of the stream seeded `train.seed`, no
//! dropout), each filter-normalised per column of every weight matrix (embeddings included),
//! with biases and LayerNorm gains and shifts left at zero. A point costs one validation pass
//! and one evaluation's generations of the chosen mode.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use super::gen_eval::{metric_names, GenMode, GenerationScorer, Judge};
use super::prepare::prepare_run_data;
use super::task::LmTask;
use crate::config::Config;
use crate::interop::host_model::{run_dir_of, HostModel};
use crate::landscape::{
    gradient_at, shifted, slice_directions, slice_offsets, write_outputs, Column, ProbePoint,
};
use crate::model::params::upload;
use crate::train::Task;

/// `--metric`'s default: the story checker's validity of the greedy generations
/// (`gen_valid_greedy_<weights>`).
pub const DEFAULT_METRIC: &str = "validity";

/// A generation metric of the probe: the `<metric>` and `<mode>` of the trainer's
/// `gen_<metric>_<mode>_<weights>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenMetric {
    /// A name of [`metric_names`], e.g. `valid`, `rep4`, `invalid_no_hero`, `judge_nll`.
    pub name: String,
    pub mode: GenMode,
}

impl GenMetric {
    /// Parses `--metric`: `validity` (the greedy `valid`), or a name of [`metric_names`]
    /// (`validity` may stand for `valid`), optionally suffixed `_greedy` (the default) or
    /// `_sample` and optionally prefixed `gen_`, so a metrics.jsonl key works with or without
    /// its `_<weights>` (`gen_rep4_sample`, `gen_rep4_sample_raw`; `--ema` picks the weights).
    ///
    /// Errors: an unknown name, with the accepted ones listed ([`accepted_metrics`]).
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.strip_prefix("gen_").unwrap_or(text);
        // A metrics.jsonl key whole: the weights come from --ema, not from the name.
        let t = t
            .strip_suffix("_raw")
            .or_else(|| t.strip_suffix("_ema"))
            .unwrap_or(t);
        let (base, mode) = if let Some(b) = t.strip_suffix("_sample") {
            (b, GenMode::Sample)
        } else {
            (t.strip_suffix("_greedy").unwrap_or(t), GenMode::Greedy)
        };
        let name = if base == "validity" { "valid" } else { base };
        if name == "horizon" {
            bail!("--metric horizon: the butterfly horizon compares one evaluation's greedy generations with the previous evaluation's, so it is no function of one set of weights; pick one of {}", accepted_metrics());
        }
        if !metric_names(true, true).iter().any(|m| m == name) {
            bail!(
                "unknown --metric {text:?}: pick one of {}",
                accepted_metrics()
            );
        }
        Ok(Self {
            name: name.to_string(),
            mode,
        })
    }

    /// `gen_<metric>_<mode>`: the probe's CSV column; the trainer logs the same value as
    /// `gen_<metric>_<mode>_<weights>`.
    pub fn column(&self) -> String {
        format!("gen_{}_{}", self.name, self.mode.label())
    }
}

/// The names `--metric` accepts, for help and errors.
pub fn accepted_metrics() -> String {
    format!(
        "validity (= valid, the greedy story validity; the default), {}; each optionally suffixed _greedy (the default) or _sample. valid and invalid_* need the run's eval.story_checker, judge_nll* its eval.judge_checkpoint, _sample its eval.sample_seeds > 0",
        metric_names(true, true).join(", ")
    )
}

/// What to probe.
pub struct LmLandscapeRequest<'a> {
    /// A checkpoint file, or a run directory (its newest intact checkpoint).
    pub checkpoint: &'a Path,
    /// Probe around the EMA weights instead of the raw ones.
    pub ema: bool,
    /// Random directions (the gradient direction comes on top).
    pub directions: usize,
    /// Half-width R of each slice, in filter-normalised units.
    pub radius: f64,
    /// Points per slice (odd, so that one is s = 0).
    pub points: usize,
    /// `--metric` as given (see [`GenMetric::parse`]).
    pub metric: &'a str,
    /// Validation windows per point: the first this many of the run's fixed windows (more than
    /// the run's `eval.val_windows` extends them the same way); `None`: the run's own
    /// `eval.val_windows`, so that the centre reproduces its logged val loss.
    pub val_windows: Option<usize>,
    /// Seed of the random directions.
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N`, … as `device` in a config.
    pub device: &'a str,
    pub out: PathBuf,
}

/// One evaluated point.
#[derive(Clone, Debug)]
pub struct LmPoint {
    /// `random<k>` or `gradient`.
    pub direction: String,
    pub s: f64,
    /// Mean next-token cross-entropy on the probe's validation windows, nats per token.
    pub val_loss: f64,
    /// The generation metric (NaN when it has no value there, e.g. `rep4` of generations all
    /// shorter than four tokens).
    pub metric: f64,
}

/// Runs the probe on a language-model checkpoint, writes `landscape.csv` (columns `direction,
/// s, val_loss, gen_<metric>_<mode>`), `landscape.md` (with the time it took) and two SVGs per
/// direction into `req.out`, and returns the points, direction by direction.
///
/// Errors: `--points` < 2, an unknown or (for this run) unavailable metric, a checkpoint that
/// does not load (a BC one, a missing tokenizer, `--ema` without EMA weights), or the run's data
/// being gone (the validation windows, prompts and training batch are rebuilt from the config's
/// shards).
pub fn landscape(req: &LmLandscapeRequest) -> Result<Vec<LmPoint>> {
    let offsets = slice_offsets(req.radius, req.points)?;
    let metric = GenMetric::parse(req.metric)?;
    if req.val_windows == Some(0) {
        bail!("--val-windows must be at least 1");
    }
    let started = Instant::now();
    let host = HostModel::from_checkpoint(req.checkpoint, req.ema)?;
    let origin = host
        .checkpoint
        .clone()
        .ok_or_else(|| anyhow!("{} is not a checkpoint", req.checkpoint.display()))?;
    let mut config: Config = toml::from_str(&origin.meta.config)
        .with_context(|| format!("{}: the stored config is unreadable", origin.path.display()))?;
    let available = metric_names(
        config.eval.story_checker,
        config.eval.judge_checkpoint.is_some(),
    );
    if !available.contains(&metric.name) {
        bail!(
            "--metric {}: this run does not compute it ({}); it has {}",
            req.metric,
            if metric.name.starts_with("judge_nll") {
                "no eval.judge_checkpoint"
            } else {
                "eval.story_checker is off; the checker reads the synthetic story corpus"
            },
            available.join(", ")
        );
    }
    // The run's windows and prompts, rebuilt as the trainer built them; prompts exist only for
    // runs that generate, so a run that did not gets the ones it would have had.
    if let Some(n) = req.val_windows {
        config.eval.val_windows = n;
    }
    if config.eval.generate_every == 0 {
        config.eval.generate_every = 1;
    }
    let run_dir = run_dir_of(&origin.path);
    let data = prepare_run_data(&config, &run_dir, Some(&host.tokenizer_path))
        .with_context(|| format!("rebuilding the data of {}", run_dir.display()))?;
    for note in data.notes.iter().filter(|n| n.starts_with("warning")) {
        eprintln!("landscape: {note}");
    }
    let device = crate::device::choose_device(crate::device::DeviceChoice::parse(req.device)?)?;
    let mut gpt = host.gpt;
    let (compute, note) = config.model.compute_on(device.backend);
    gpt.compute = compute;
    if let Some(note) = note {
        eprintln!("landscape: {note}");
    }
    let device = device.device;
    let specs = gpt.specs().to_vec();
    let mut scorer = GenerationScorer::new(
        config.eval.clone(),
        data.prompts.clone(),
        data.tokenizer.clone(),
    );
    if scorer.decodings(metric.mode).is_none() {
        bail!(
            "--metric {}: the run makes no sampled generations (eval.sample_seeds = {}, eval.temperature = {}); use the greedy form",
            req.metric,
            config.eval.sample_seeds,
            config.eval.temperature
        );
    }
    if let (true, Some(path)) = (
        metric.name.starts_with("judge_nll"),
        &config.eval.judge_checkpoint,
    ) {
        scorer = scorer.with_judge(Judge::load(
            path,
            &data.tokenizer,
            &data.tokenizer_path,
            &device,
        )?);
    }
    let n_val = data.val.len();
    let mut task = LmTask::for_run(gpt, &config, &data);
    let batch = task.next_batch(&device)?;
    let gradient = gradient_at(&specs, &host.params, &device, |p| {
        task.loss(p, &batch, false)
    })?;
    let directions = slice_directions(&specs, &host.params, req.directions, req.seed, gradient);
    let weights = if req.ema { "ema" } else { "raw" };
    let key = format!("{}_{weights}", metric.column());
    let mut points = Vec::new();
    for (name, d) in &directions {
        for &s in &offsets {
            let t0 = Instant::now();
            let params = upload(&specs, &shifted(&host.params, d, s), &device)?;
            let val_loss = task.val_loss(&params, &device)?;
            let scored = scorer.score(
                &task.gpt,
                &params,
                &device,
                weights,
                metric.mode,
                origin.meta.step,
            )?;
            let value = scored
                .metrics
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(f64::NAN, |(_, v)| *v);
            eprintln!(
                "landscape: {name} s = {s:+.3}: val loss {val_loss:.5}, {} {value:.4} ({:.1} s)",
                metric.column(),
                t0.elapsed().as_secs_f64()
            );
            points.push(LmPoint {
                direction: name.clone(),
                s,
                val_loss,
                metric: value,
            });
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let e = &config.eval;
    let per_prompt = scorer.decodings(metric.mode).map_or(0, |d| d.len());
    let heading = format!(
        "Landscape probe: {} ({} weights, step {})",
        origin.path.display(),
        if req.ema { "EMA" } else { "raw" },
        origin.meta.step
    );
    let intro = format!(
        "Validation loss (nats per token) on the run's first {n_val} fixed validation windows of \
         {} tokens, and `{}` (the trainer's `{key}`) of {} prompts × {per_prompt} {} \
         generation(s) of {} new tokens, along θ + s·d, s ∈ [−{r}, {r}] at {} points; d \
         filter-normalised per weight-matrix column, biases and LayerNorm parameters left at \
         zero (random Gaussian directions, seed {}, and the gradient of the run's first \
         training micro-batch of {} windows). Device: {}.",
        config.model.block_size + 1,
        metric.name,
        data.prompts.len(),
        metric.mode.label(),
        e.generate_tokens,
        req.points,
        req.seed,
        config.train.batch_size,
        req.device,
        r = req.radius,
    );
    let label = format!("{} ({})", metric.name, metric.mode.label());
    let column = metric.column();
    let columns = [
        Column::new("val_loss", "val loss", Some("val_loss"), 5),
        Column::new(&column, &label, Some(&column), 4),
    ];
    let rows: Vec<ProbePoint> = points
        .iter()
        .map(|p| ProbePoint {
            direction: p.direction.clone(),
            s: p.s,
            values: vec![p.val_loss, p.metric],
        })
        .collect();
    write_outputs(&req.out, &heading, &intro, &columns, &rows, seconds)?;
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_parse_to_the_trainers_keys() {
        let column = |t: &str| GenMetric::parse(t).unwrap().column();
        assert_eq!(column(DEFAULT_METRIC), "gen_valid_greedy");
        assert_eq!(column("valid"), "gen_valid_greedy");
        assert_eq!(column("validity_sample"), "gen_valid_sample");
        assert_eq!(column("rep4"), "gen_rep4_greedy");
        assert_eq!(column("gen_distinct2_sample"), "gen_distinct2_sample");
        assert_eq!(column("invalid_no_hero"), "gen_invalid_no_hero_greedy");
        assert_eq!(
            column("judge_nll_pos_0_64"),
            "gen_judge_nll_pos_0_64_greedy"
        );
        let err = GenMetric::parse("perplexity").unwrap_err().to_string();
        assert!(
            err.contains("perplexity") && err.contains("validity") && err.contains("rep4"),
            "{err}"
        );
        assert!(GenMetric::parse("horizon").is_err());
    }

    #[test]
    fn the_flag_help_names_every_metric() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let help = cli
            .find_subcommand("landscape")
            .and_then(|c| c.get_arguments().find(|a| a.get_id() == "metric"))
            .and_then(|a| a.get_help())
            .map(|h| h.to_string())
            .expect("landscape --metric has help");
        for name in metric_names(true, true) {
            let shown = name.strip_prefix("invalid_").unwrap_or(&name);
            assert!(help.contains(shown), "--metric's help lacks {name}: {help}");
        }
    }
}
