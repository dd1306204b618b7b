//! The oscillation statistics of every evaluation series of one run, raw and EMA.
//!
//! The statistics themselves are [`crate::eval::oscillation`]'s (issue 3's fixed definitions);
//! this module only decides which points each one sees:
//! - a metric's index and lag-1 autocorrelation use all its evaluations;
//! - its Spearman correlation pairs it with val loss of the *same weights* at the steps both
//!   were logged, so Δval loss and Δmetric span the same pair of evaluations;
//! - the val loss row is computed at the generation evaluations when the run has any, so val
//!   loss and generation metrics are compared on the same grid of steps (an index depends on
//!   the spacing of the points); a run without generation metrics uses every validation.
//!
//! Beside the index, every series gets `resid_sd` ([`crate::eval::swing`]: the index's
//! numerator, in the metric's units), and each quantity the EMA/raw ratio of both.
//!
//! Runs that are seeds of one setting ([`super::run_info::seed_pools`]) are pooled by
//! [`pool_analyses`]: each statistic becomes its mean over the seeds, and each interval comes
//! from the stratified bootstrap of [`crate::eval::bootstrap`] over the same series the
//! single-run statistics saw. A pooled ratio is the ratio of the pooled means.

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use super::metrics_file::{MetricsFile, Series};
use super::series_key::{parse_key, Quantity, Weights};
use crate::eval::bootstrap::{swing_draws, Interval, Swing, SwingDraws};
use crate::eval::oscillation::{
    lag1_autocorrelation_of_differences, oscillation_index, spearman_of_differences,
};
use crate::eval::swing::resid_sd;

/// Fewest evaluations the report computes statistics for; below it the report says
/// "too few evaluations". (Three points give two differences: nothing to judge oscillation by.)
pub const MIN_EVALUATIONS: usize = 4;

/// The statistics of one series (one quantity, one weights).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesStats {
    /// The points the statistics saw.
    pub evaluations: usize,
    /// `None` when there are fewer than [`MIN_EVALUATIONS`].
    pub values: Option<StatValues>,
}

/// Each `None` is undefined for this series (zero variance, mean|x| = 0, too few pairs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatValues {
    pub index: Option<f64>,
    pub lag1_autocorrelation: Option<f64>,
    /// Spearman(Δval loss, Δmetric); `None` for val loss itself.
    pub spearman_vs_val_loss: Option<f64>,
    /// The index's 95% block-bootstrap interval ([`crate::eval::bootstrap`]).
    pub index_ci: Option<Interval>,
    /// std(Δr), in the metric's units ([`crate::eval::swing::resid_sd`]).
    pub resid_sd: Option<f64>,
    /// Its 95% interval (the same bootstrap draws as the index's).
    pub resid_sd_ci: Option<Interval>,
}

/// The values a quantity's statistics were computed on, kept so that seeds can be pooled by
/// resampling exactly these ([`pool_analyses`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatInputs {
    /// The raw series the raw index and resid_sd saw (val loss: on the generation grid).
    pub raw: Vec<f64>,
    /// The same for EMA.
    pub ema: Vec<f64>,
    /// EMA and raw at the evaluations both were logged (the EMA/raw ratios).
    pub ema_raw: [Vec<f64>; 2],
    /// The metric and val loss, raw weights, at the evaluations both were logged (the
    /// metric/val-loss ratio); `None` for val loss itself.
    pub metric_val: Option<[Vec<f64>; 2]>,
}

/// The intervals of one quantity (one run, or seeds pooled).
#[derive(Clone, Copy, Debug, Default)]
struct Intervals {
    index_raw: Option<Interval>,
    index_ema: Option<Interval>,
    resid_raw: Option<Interval>,
    resid_ema: Option<Interval>,
    ema_over_raw: Option<Interval>,
    ema_over_raw_resid: Option<Interval>,
    over_val_loss: Option<Interval>,
}

/// The intervals over `seeds` (one for a single run), each seed's inputs resampled on its own.
fn intervals(seeds: &[&StatInputs], trend_window: usize) -> Intervals {
    let draws = |pick: &dyn Fn(&StatInputs) -> Option<Vec<&[f64]>>| {
        let series: Option<Vec<Vec<&[f64]>>> = seeds.iter().map(|s| pick(s)).collect();
        swing_draws(&series?, trend_window)
    };
    let raw = draws(&|s| Some(vec![&s.raw]));
    let ema = draws(&|s| Some(vec![&s.ema]));
    let pair = draws(&|s| Some(vec![&s.ema_raw[0], &s.ema_raw[1]]));
    let val = draws(&|s| s.metric_val.as_ref().map(|[m, v]| vec![m.as_slice(), v]));
    let one = |d: &Option<SwingDraws>, swing| d.as_ref().and_then(|d| d.interval(swing, 0));
    let ratio =
        |d: &Option<SwingDraws>, swing| d.as_ref().and_then(|d| d.ratio_interval(swing, 0, 1));
    Intervals {
        index_raw: one(&raw, Swing::Index),
        index_ema: one(&ema, Swing::Index),
        resid_raw: one(&raw, Swing::ResidSd),
        resid_ema: one(&ema, Swing::ResidSd),
        ema_over_raw: ratio(&pair, Swing::Index),
        ema_over_raw_resid: ratio(&pair, Swing::ResidSd),
        over_val_loss: ratio(&val, Swing::Index),
    }
}

/// One quantity's series and statistics, raw and EMA.
#[derive(Clone, Debug)]
pub struct QuantityAnalysis {
    pub quantity: Quantity,
    pub raw: SeriesStats,
    pub ema: SeriesStats,
    /// The series as logged (for plots).
    pub series_raw: Series,
    pub series_ema: Series,
    /// (Δval loss, Δmetric) between consecutive paired evaluations, raw and EMA (for the
    /// scatter plot); empty for val loss.
    pub deltas_raw: Vec<(f64, f64)>,
    pub deltas_ema: Vec<(f64, f64)>,
    /// 95% interval of index(EMA)/index(raw), both resampled together at the evaluations both
    /// were logged.
    pub ema_over_raw_ci: Option<Interval>,
    /// The same for resid_sd(EMA)/resid_sd(raw).
    pub ema_over_raw_resid_ci: Option<Interval>,
    /// 95% interval of index(metric)/index(val loss), raw weights, at the evaluations both were
    /// logged; `None` for val loss itself.
    pub over_val_loss_ci: Option<Interval>,
    /// What the statistics saw (empty for a pool).
    pub inputs: StatInputs,
}

impl QuantityAnalysis {
    pub fn stats(&self, weights: Weights) -> &SeriesStats {
        match weights {
            Weights::Raw => &self.raw,
            Weights::Ema => &self.ema,
        }
    }

    pub fn series(&self, weights: Weights) -> &Series {
        match weights {
            Weights::Raw => &self.series_raw,
            Weights::Ema => &self.series_ema,
        }
    }

    pub fn deltas(&self, weights: Weights) -> &[(f64, f64)] {
        match weights {
            Weights::Raw => &self.deltas_raw,
            Weights::Ema => &self.deltas_ema,
        }
    }

    /// resid_sd(EMA) / resid_sd(raw), when both are defined and raw's is not 0.
    pub fn ema_over_raw_resid(&self) -> Option<f64> {
        let pick = |s: &SeriesStats| s.values.and_then(|v| v.resid_sd);
        match (pick(&self.raw), pick(&self.ema)) {
            (Some(raw), Some(ema)) if raw > 0.0 => Some(ema / raw),
            _ => None,
        }
    }
}

/// Everything the report says about one run's numbers.
#[derive(Clone, Debug)]
pub struct RunAnalysis {
    /// Sorted: val loss first (always present, possibly empty), then position buckets, then
    /// generation metrics.
    pub quantities: Vec<QuantityAnalysis>,
    /// Whether the val loss row was computed at the generation evaluations only.
    pub val_loss_at_generation_steps: bool,
    /// Steps with at least one generation metric.
    pub generation_evaluations: usize,
}

impl RunAnalysis {
    pub fn val_loss(&self) -> &QuantityAnalysis {
        &self.quantities[0]
    }
}

pub fn analyze(metrics: &MetricsFile, trend_window: usize) -> Result<RunAnalysis> {
    let mut found: BTreeSet<Quantity> = metrics
        .keys()
        .into_iter()
        .filter_map(parse_key)
        .map(|(quantity, _)| quantity)
        .collect();
    if found.is_empty() {
        bail!(
            "{} has no evaluation series (val_loss_raw/_ema, val_loss_pos_*, gen_*, rollout_*): has the run reached its first validation?",
            metrics.path.display()
        );
    }
    found.insert(Quantity::ValLoss);
    let generation_steps =
        metrics.steps_with(|key| parse_key(key).is_some_and(|(q, _)| q.is_long_horizon()));
    let val_loss_at_generation_steps = !generation_steps.is_empty();
    let val_raw = metrics.series(&Quantity::ValLoss.key(Weights::Raw));
    let val_ema = metrics.series(&Quantity::ValLoss.key(Weights::Ema));

    let quantities = found
        .into_iter()
        .map(|quantity| {
            let series_raw = metrics.series(&quantity.key(Weights::Raw));
            let series_ema = metrics.series(&quantity.key(Weights::Ema));
            let is_val_loss = quantity == Quantity::ValLoss;
            // Val loss: on the generation grid, when there is one.
            let grid = |s: &Series| {
                if is_val_loss && val_loss_at_generation_steps {
                    s.at_steps(&generation_steps)
                } else {
                    s.clone()
                }
            };
            let (stat_raw, stat_ema) = (grid(&series_raw), grid(&series_ema));
            let (r, e) = stat_raw.paired_with(&stat_ema);
            let inputs = StatInputs {
                raw: stat_raw.values.clone(),
                ema: stat_ema.values.clone(),
                ema_raw: [e.values, r.values],
                metric_val: (!is_val_loss).then(|| {
                    let (v, m) = val_raw.paired_with(&series_raw);
                    [m.values, v.values]
                }),
            };
            let ci = intervals(&[&inputs], trend_window);
            let (val_for_raw, val_for_ema) = if is_val_loss {
                (None, None)
            } else {
                (Some(&val_raw), Some(&val_ema))
            };
            QuantityAnalysis {
                raw: series_stats(
                    &stat_raw,
                    val_for_raw,
                    trend_window,
                    ci.index_raw,
                    ci.resid_raw,
                ),
                ema: series_stats(
                    &stat_ema,
                    val_for_ema,
                    trend_window,
                    ci.index_ema,
                    ci.resid_ema,
                ),
                ema_over_raw_ci: ci.ema_over_raw,
                ema_over_raw_resid_ci: ci.ema_over_raw_resid,
                over_val_loss_ci: ci.over_val_loss,
                deltas_raw: if is_val_loss {
                    Vec::new()
                } else {
                    deltas(&val_raw, &series_raw)
                },
                deltas_ema: if is_val_loss {
                    Vec::new()
                } else {
                    deltas(&val_ema, &series_ema)
                },
                inputs,
                quantity,
                series_raw,
                series_ema,
            }
        })
        .collect();
    Ok(RunAnalysis {
        quantities,
        val_loss_at_generation_steps,
        generation_evaluations: generation_steps.len(),
    })
}

fn series_stats(
    metric: &Series,
    val_loss: Option<&Series>,
    trend_window: usize,
    index_ci: Option<Interval>,
    resid_sd_ci: Option<Interval>,
) -> SeriesStats {
    let evaluations = metric.len();
    if evaluations < MIN_EVALUATIONS {
        return SeriesStats {
            evaluations,
            values: None,
        };
    }
    let spearman_vs_val_loss = val_loss.and_then(|val| {
        let (val, metric) = val.paired_with(metric);
        spearman_of_differences(&val.values, &metric.values)
    });
    SeriesStats {
        evaluations,
        values: Some(StatValues {
            index: oscillation_index(&metric.values, trend_window),
            lag1_autocorrelation: lag1_autocorrelation_of_differences(&metric.values),
            spearman_vs_val_loss,
            index_ci,
            resid_sd: resid_sd(&metric.values, trend_window),
            resid_sd_ci,
        }),
    }
}

/// Seeds of one setting pooled: the quantities every seed has, each statistic the mean over the
/// seeds (a seed without it leaves the pool without it), each interval the stratified bootstrap
/// over the seeds' own series, and the evaluations summed. The pool has no series or deltas of
/// its own (its plots are the seeds'). `None` for fewer than 2 seeds.
pub fn pool_analyses(seeds: &[&RunAnalysis], trend_window: usize) -> Option<RunAnalysis> {
    if seeds.len() < 2 {
        return None;
    }
    let quantities = seeds[0]
        .quantities
        .iter()
        .filter_map(|q| {
            let members: Vec<&QuantityAnalysis> = seeds
                .iter()
                .map(|s| s.quantities.iter().find(|m| m.quantity == q.quantity))
                .collect::<Option<_>>()?;
            let inputs: Vec<&StatInputs> = members.iter().map(|m| &m.inputs).collect();
            let ci = intervals(&inputs, trend_window);
            let pooled = |w: Weights, index_ci, resid_sd_ci| {
                let stats: Vec<&SeriesStats> = members.iter().map(|m| m.stats(w)).collect();
                let values: Option<Vec<StatValues>> = stats.iter().map(|s| s.values).collect();
                SeriesStats {
                    evaluations: stats.iter().map(|s| s.evaluations).sum(),
                    values: values.map(|v| StatValues {
                        index: mean_of(&v, |x| x.index),
                        lag1_autocorrelation: mean_of(&v, |x| x.lag1_autocorrelation),
                        spearman_vs_val_loss: mean_of(&v, |x| x.spearman_vs_val_loss),
                        index_ci,
                        resid_sd: mean_of(&v, |x| x.resid_sd),
                        resid_sd_ci,
                    }),
                }
            };
            Some(QuantityAnalysis {
                quantity: q.quantity.clone(),
                raw: pooled(Weights::Raw, ci.index_raw, ci.resid_raw),
                ema: pooled(Weights::Ema, ci.index_ema, ci.resid_ema),
                series_raw: Series::default(),
                series_ema: Series::default(),
                deltas_raw: Vec::new(),
                deltas_ema: Vec::new(),
                ema_over_raw_ci: ci.ema_over_raw,
                ema_over_raw_resid_ci: ci.ema_over_raw_resid,
                over_val_loss_ci: ci.over_val_loss,
                inputs: StatInputs::default(),
            })
        })
        .collect();
    Some(RunAnalysis {
        quantities,
        val_loss_at_generation_steps: seeds.iter().all(|s| s.val_loss_at_generation_steps),
        generation_evaluations: seeds.iter().map(|s| s.generation_evaluations).sum(),
    })
}

/// The mean of a statistic over seeds; `None` if any seed lacks it.
fn mean_of(values: &[StatValues], pick: fn(&StatValues) -> Option<f64>) -> Option<f64> {
    let picked: Option<Vec<f64>> = values.iter().map(pick).collect();
    picked.map(|p| p.iter().sum::<f64>() / p.len() as f64)
}

/// (Δval loss, Δmetric) over consecutive evaluations where both were logged.
fn deltas(val_loss: &Series, metric: &Series) -> Vec<(f64, f64)> {
    let (val, metric) = val_loss.paired_with(metric);
    val.values
        .windows(2)
        .zip(metric.values.windows(2))
        .map(|(v, m)| (v[1] - v[0], m[1] - m[0]))
        .filter(|(dv, dm)| dv.is_finite() && dm.is_finite())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::metrics_file::parse_metrics;
    use std::fmt::Write;
    use std::path::Path;

    #[test]
    fn val_loss_row_uses_the_generation_grid_and_short_series_are_too_few() {
        let mut text = String::new();
        for step in 1..=20u64 {
            // Val loss every step, a generation metric every 4th step, another at three of those.
            let mut row = format!(
                "{{\"step\":{step},\"val_loss_raw\":{}",
                5.0 - 0.1 * step as f64
            );
            if step % 4 == 0 {
                let zigzag = if step % 8 == 0 { 0.6 } else { 0.4 };
                write!(row, ",\"gen_rep4_greedy_raw\":{zigzag}").expect("write");
            }
            if (8..=16).contains(&step) && step % 4 == 0 {
                write!(row, ",\"gen_valid_greedy_raw\":0.5").expect("write");
            }
            text.push_str(&row);
            text.push_str("}\n");
        }
        let metrics = parse_metrics(&text, Path::new("m.jsonl")).expect("parses");
        let a = analyze(&metrics, 5).expect("analyzes");
        let labels: Vec<String> = a.quantities.iter().map(|q| q.quantity.label()).collect();
        assert_eq!(labels, ["val loss", "rep4 (greedy)", "valid (greedy)"]);
        assert!(a.val_loss_at_generation_steps);
        // Steps 4, 8, …, 20.
        assert_eq!(a.generation_evaluations, 5);
        assert_eq!(a.val_loss().raw.evaluations, 5);
        assert_eq!(a.val_loss().series_raw.len(), 20);
        // A straight line sampled at evenly spaced steps has index 0.
        let val = a.val_loss().raw.values.expect("enough points");
        assert!(val.index.expect("defined").abs() < 1e-9);
        let rep4 = &a.quantities[1];
        assert_eq!(rep4.raw.evaluations, 5);
        assert!(rep4.raw.values.and_then(|v| v.index).expect("defined") > 0.1);
        assert_eq!(rep4.deltas_raw.len(), 4);
        assert_eq!(rep4.ema.evaluations, 0);
        assert_eq!(rep4.ema.values, None);
        assert_eq!(a.quantities[2].raw.evaluations, 3);
        assert_eq!(a.quantities[2].raw.values, None);
    }

    #[test]
    fn a_run_without_evaluations_is_an_error() {
        let metrics = parse_metrics(
            "{\"step\":1,\"train_loss\":4.0}\n",
            Path::new("run/metrics.jsonl"),
        )
        .expect("parses");
        let err = format!("{:#}", analyze(&metrics, 5).expect_err("no series"));
        assert!(
            err.contains("run/metrics.jsonl has no evaluation series"),
            "{err}"
        );
    }
}
