//! `lmtrain report`: from run directories' metrics.jsonl (and config.toml, for labels) to a
//! `report.md` with SVG plots — does generation quality oscillate more than val loss, and what
//! did EMA do to it (issue 3, "Report and plots").
//!
//! It reads files only (no model, no device), so it runs on a laptop over a GPU box's run
//! directories. With one run the report goes to `RUN_DIR/report.md` and its plots to
//! `RUN_DIR/report/`; with several (a sweep) to `--out` (default `./report/`), the runs overlaid
//! in every plot, with plots in `OUT/plots/`.
//!
//! Issue 17's measures come from the same files: resid_sd beside every index, flip rates of BC
//! falling (rollouts.jsonl) and of the LM's greedy story verdicts (generations.jsonl), and runs
//! that are seeds of one setting ([`run_info::seed_pools`]) pooled, their verdict over the
//! pooled statistics.

pub mod analysis;
pub mod markdown;
pub mod metrics_file;
pub mod outcomes_file;
pub mod plots;
pub mod run_info;
pub mod series_key;
pub mod verdict;

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::eval::flips::{pooled_flip_stats, FlipStats};
use crate::eval::oscillation::DEFAULT_TREND_WINDOW;
use analysis::{analyze, pool_analyses};
use markdown::{render, PlotSection, PoolReport, Pools, RunReport};
use metrics_file::read_metrics;
use outcomes_file::VerdictFlips;
use plots::{line_plot_svg, run_colour, scatter_plot_svg, LineSet, ScatterSet};
use run_info::{make_labels_unique, read_run_info, seed_pools};
use series_key::{Quantity, Weights};

/// Where reports over several runs go without `--out`.
pub const DEFAULT_SWEEP_OUT: &str = "report";

#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub run_dirs: Vec<PathBuf>,
    /// Where report.md goes; `None`: the run directory for one run, `./report` for several.
    pub out: Option<PathBuf>,
    /// Width of the centred moving average (odd, ≥ 1).
    pub trend_window: usize,
    /// The statistics use steps ≥ this; `None`: from where the val-loss trend has settled
    /// ([`metrics_file::settled_step`]).
    pub from_step: Option<u64>,
}

impl ReportOptions {
    pub fn new(run_dirs: Vec<PathBuf>) -> Self {
        ReportOptions {
            run_dirs,
            out: None,
            trend_window: DEFAULT_TREND_WINDOW,
            from_step: None,
        }
    }
}

/// What a report wrote.
#[derive(Clone, Debug)]
pub struct ReportOutput {
    pub markdown: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// Accepts an odd trend window ≥ 1. An even width has no centre, and the statistics would
/// silently use the next odd one; a report should say which window it used, so even is refused.
pub fn check_trend_window(window: usize) -> Result<usize> {
    if window == 0 || window.is_multiple_of(2) {
        bail!("the trend window must be odd and at least 1 (a centred moving average needs a middle point), got {window}");
    }
    Ok(window)
}

/// clap's parser for `--trend-window`.
pub fn parse_trend_window(text: &str) -> std::result::Result<usize, String> {
    let window: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    crate::config::ranges::check_int("report --trend-window", window as u64)
        .map_err(|e| e.to_string())?;
    check_trend_window(window).map_err(|e| e.to_string())
}

/// The default statistics window of a run: from where the val-loss trend has settled
/// ([`metrics_file::settled_step`]) and the EMA has left its burn-in (before it the EMA is the
/// iterate), unless that leaves fewer than [`analysis::MIN_EVALUATIONS`] long-horizon
/// evaluations; then every step. Returns the first step and the report's words for it.
fn default_window(
    full: &metrics_file::MetricsFile,
    info: &run_info::RunInfo,
    trend_window: usize,
) -> (u64, String) {
    let setting = |key: &str| {
        info.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let burn_in = match setting("ema.enabled").as_deref() {
        Some("false") => 0,
        _ => setting("ema.burn_in")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |b| b + 1),
    };
    let settled = metrics_file::settled_step(full, trend_window).unwrap_or(0);
    let start = settled.max(burn_in);
    if start == 0 {
        return (
            0,
            "every step (val loss has no descent to skip)".to_string(),
        );
    }
    let long_horizon = |m: &metrics_file::MetricsFile| {
        m.steps_with(|key| series_key::parse_key(key).is_some_and(|(q, _)| q.is_long_horizon()))
            .len()
    };
    let left = long_horizon(&full.from_step(start));
    if long_horizon(full) > 0 && left < analysis::MIN_EVALUATIONS {
        return (
            0,
            format!("every step: after step {start}, where the val-loss trend has settled and the EMA has left its burn-in, only {left} long-horizon evaluation(s) remain"),
        );
    }
    (
        start,
        format!("steps ≥ {start}, where the val-loss trend has less than 10% of its descent left and the EMA has left its burn-in (the default; --from-step N to choose, 0 for every step)"),
    )
}

/// Reads every run, writes report.md and its plots, and says where.
pub fn write_report(options: &ReportOptions) -> Result<ReportOutput> {
    check_trend_window(options.trend_window)?;
    if options.run_dirs.is_empty() {
        bail!("give at least one run directory");
    }
    let mut infos: Vec<_> = options
        .run_dirs
        .iter()
        .map(|dir| read_run_info(dir))
        .collect();
    make_labels_unique(&mut infos);
    let (pool_members, pool_notes) = seed_pools(&infos);
    let mut runs = Vec::with_capacity(infos.len());
    for info in infos {
        let full = read_metrics(&info.dir)?;
        let (from_step, window_note) = match options.from_step {
            Some(n) => (n, format!("steps ≥ {n} (--from-step)")),
            None => default_window(&full, &info, options.trend_window),
        };
        if let Some(last) = full.last_step().filter(|&l| from_step > l) {
            bail!(
                "--from-step {from_step} is past the last logged step of {} ({last}): give a step at or before it",
                info.dir.display()
            );
        }
        let metrics = full.from_step(from_step);
        let analysis = analyze(&metrics, options.trend_window)
            .with_context(|| format!("the statistics' window: {window_note}"))?;
        let fall_flips = outcomes_file::read_fall_flips(&info.dir, from_step)?;
        let verdict_flips = outcomes_file::read_verdict_flips(&info.dir, from_step)?;
        runs.push(RunReport {
            info,
            metrics,
            analysis,
            fall_flips,
            verdict_flips,
            window_note,
        });
    }
    let pools: Vec<PoolReport> = pool_members
        .into_iter()
        .filter_map(|members| pool_report(&runs, members, options.trend_window))
        .collect();

    let single = runs.len() == 1;
    let (out_dir, plots_subdir) = match (&options.out, single) {
        (Some(out), _) => (out.clone(), "plots"),
        (None, true) => (options.run_dirs[0].clone(), "report"),
        (None, false) => (PathBuf::from(DEFAULT_SWEEP_OUT), "plots"),
    };
    let plots_dir = out_dir.join(plots_subdir);
    std::fs::create_dir_all(&plots_dir)
        .with_context(|| format!("cannot create {}", plots_dir.display()))?;

    let mut written = Vec::new();
    let mut sections = Vec::new();
    let mut write_svg = |file: String, svg: Option<String>| -> Result<Option<String>> {
        let Some(svg) = svg else { return Ok(None) };
        let path = plots_dir.join(&file);
        crate::fsutil::write_atomic(&path, svg.as_bytes())?;
        written.push(path);
        // Markdown wants forward slashes whatever the platform.
        Ok(Some(format!("{plots_subdir}/{file}")))
    };

    let quantities: BTreeSet<Quantity> = runs
        .iter()
        .flat_map(|r| r.analysis.quantities.iter().map(|q| q.quantity.clone()))
        .collect();
    for quantity in &quantities {
        let label = quantity.label();
        let per_run: Vec<_> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let q = r
                    .analysis
                    .quantities
                    .iter()
                    .find(|q| &q.quantity == quantity)?;
                let legend = if single { "" } else { r.info.label.as_str() };
                Some((legend, run_colour(i), q))
            })
            .collect();
        let lines: Vec<LineSet> = per_run
            .iter()
            .map(|(legend, colour, q)| LineSet {
                label: legend,
                colour: *colour,
                raw: q.series(Weights::Raw),
                ema: q.series(Weights::Ema),
            })
            .collect();
        let stem = quantity.file_stem();
        let mut images = Vec::new();
        let line = line_plot_svg(&format!("{label}: raw vs EMA"), &label, &lines)?;
        if let Some(path) = write_svg(format!("{stem}.svg"), line)? {
            images.push((format!("{label} over steps"), path));
        }
        if *quantity != Quantity::ValLoss {
            let scatters: Vec<ScatterSet> = per_run
                .iter()
                .map(|(legend, colour, q)| ScatterSet {
                    label: legend,
                    colour: *colour,
                    raw: q.deltas(Weights::Raw),
                    ema: q.deltas(Weights::Ema),
                })
                .collect();
            let scatter = scatter_plot_svg(
                &format!("Δ {label} vs Δ val loss"),
                "Δ val loss",
                &format!("Δ {label}"),
                &scatters,
            )?;
            if let Some(path) = write_svg(format!("{stem}_vs_val_loss.svg"), scatter)? {
                images.push((format!("Δ {label} against Δ val loss"), path));
            }
        }
        if !images.is_empty() {
            sections.push(PlotSection {
                title: label,
                images,
            });
        }
    }

    let markdown_path = out_dir.join("report.md");
    let pools = Pools {
        pools: &pools,
        notes: &pool_notes,
    };
    let text = render(&runs, pools, &sections, options.trend_window);
    crate::fsutil::write_atomic(&markdown_path, text.as_bytes())?;
    Ok(ReportOutput {
        markdown: markdown_path,
        plots: written,
    })
}

/// The runs `members` (seeds of one setting) pooled: statistics, and flip rates per weights
/// that every seed has.
fn pool_report(runs: &[RunReport], members: Vec<usize>, trend_window: usize) -> Option<PoolReport> {
    let seeds: Vec<&RunReport> = members.iter().map(|&i| &runs[i]).collect();
    let analyses: Vec<_> = seeds.iter().map(|r| &r.analysis).collect();
    let analysis = pool_analyses(&analyses, trend_window)?;
    let label = format!(
        "pooled: {}",
        seeds
            .iter()
            .map(|r| r.info.label.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    );
    // One weights' statistic from every seed, pooled; `None` if a seed lacks it.
    let pool = |w: Weights, pick: fn(&RunReport, Weights) -> Option<&FlipStats>| {
        let stats: Option<Vec<&FlipStats>> = seeds.iter().map(|r| pick(r, w)).collect();
        pooled_flip_stats(&stats?)
    };
    let fall_flips = Weights::BOTH
        .into_iter()
        .filter_map(|w| Some((w, pool(w, RunReport::fall_flips_of)?)))
        .collect();
    let verdict_flips = Weights::BOTH
        .into_iter()
        .filter_map(|w| {
            Some(VerdictFlips {
                weights: w,
                validity: pool(w, |r, w| Some(&r.verdict_flips_of(w)?.validity))?,
                verdict: pool(w, |r, w| Some(&r.verdict_flips_of(w)?.verdict))?,
            })
        })
        .collect();
    Some(PoolReport {
        label,
        members,
        analysis,
        fall_flips,
        verdict_flips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_window_must_be_odd_and_positive() {
        assert_eq!(parse_trend_window("5"), Ok(5));
        assert_eq!(parse_trend_window("1"), Ok(1));
        for bad in ["4", "0", "-3", "x"] {
            assert!(parse_trend_window(bad).is_err(), "{bad}");
        }
        assert!(parse_trend_window("4")
            .expect_err("even")
            .contains("must be odd"));
    }
}
