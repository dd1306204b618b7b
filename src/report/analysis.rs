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

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use super::metrics_file::{MetricsFile, Series};
use super::series_key::{parse_key, Quantity, Weights};
use crate::eval::bootstrap::{index_interval, ratio_interval, Interval};
use crate::eval::oscillation::{
    lag1_autocorrelation_of_differences, oscillation_index, spearman_of_differences,
};

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
    /// 95% interval of index(metric)/index(val loss), raw weights, at the evaluations both were
    /// logged; `None` for val loss itself.
    pub over_val_loss_ci: Option<Interval>,
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
            if quantity == Quantity::ValLoss {
                let grid = |s: &Series| {
                    if val_loss_at_generation_steps {
                        s.at_steps(&generation_steps)
                    } else {
                        s.clone()
                    }
                };
                let (r, e) = grid(&series_raw).paired_with(&grid(&series_ema));
                return QuantityAnalysis {
                    ema_over_raw_ci: ratio_interval(&e.values, &r.values, trend_window),
                    over_val_loss_ci: None,
                    raw: series_stats(&grid(&series_raw), None, trend_window),
                    ema: series_stats(&grid(&series_ema), None, trend_window),
                    quantity,
                    series_raw,
                    series_ema,
                    deltas_raw: Vec::new(),
                    deltas_ema: Vec::new(),
                };
            }
            let (r, e) = series_raw.paired_with(&series_ema);
            let (v, m) = val_raw.paired_with(&series_raw);
            QuantityAnalysis {
                ema_over_raw_ci: ratio_interval(&e.values, &r.values, trend_window),
                over_val_loss_ci: ratio_interval(&m.values, &v.values, trend_window),
                raw: series_stats(&series_raw, Some(&val_raw), trend_window),
                ema: series_stats(&series_ema, Some(&val_ema), trend_window),
                deltas_raw: deltas(&val_raw, &series_raw),
                deltas_ema: deltas(&val_ema, &series_ema),
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

fn series_stats(metric: &Series, val_loss: Option<&Series>, trend_window: usize) -> SeriesStats {
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
            index_ci: index_interval(&metric.values, trend_window),
        }),
    }
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
