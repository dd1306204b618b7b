//! The few sentences at the top of a report: for each long-horizon metric, does it oscillate more
//! than val loss (raw weights, oscillation indices compared: the metrics have different units, so
//! each swing is divided by its level), and what did EMA do to it (the ratio of EMA's resid_sd to
//! raw's: the same metric in the same units, so the absolute swing is compared and a lower level
//! cannot read as a larger swing, the confound of the index that issue 17 describes; the index
//! ratio is quoted beside it). A comparison is decided only when the 95% block-bootstrap interval
//! of its ratio ([`crate::eval::bootstrap`]) lies on one side of 1; otherwise the verdict says
//! "not resolved". A pool of seeds gets the same sentences from its pooled statistics
//! ([`super::analysis::pool_analyses`]).

use super::analysis::{QuantityAnalysis, RunAnalysis, SeriesStats};
use super::markdown::{format_number, format_ratio};
use super::metrics_file::Series;
use super::series_key::Weights;
use crate::eval::bootstrap::Interval;

/// How a metric's raw oscillation compares with val loss's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VersusValLoss {
    /// The ratio's interval lies above 1.
    More { ratio: f64, ci: Interval },
    /// The ratio's interval lies below 1.
    Less { ratio: f64, ci: Interval },
    /// The interval straddles 1, or there is none.
    NotResolved { ratio: f64, ci: Option<Interval> },
    /// Val loss's index is 0 (a perfectly smooth trend) while the metric's is not.
    ValLossFlat,
    /// Some index is missing or undefined.
    Unknown,
}

/// What EMA did to a metric's oscillation index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EmaEffect {
    /// The EMA/raw ratio's interval lies below 1.
    Damped {
        ratio: f64,
        ci: Interval,
    },
    /// The interval straddles 1, or there is none.
    NotResolved {
        ratio: f64,
        ci: Option<Interval>,
    },
    /// The interval lies above 1.
    Amplified {
        ratio: f64,
        ci: Interval,
    },
    Unknown,
}

/// Which side of 1 an interval lies on: `Some(true)` above, `Some(false)` below, `None` across
/// or absent.
fn side_of_one(ci: Option<Interval>) -> Option<bool> {
    match ci {
        Some(c) if c.lo > 1.0 => Some(true),
        Some(c) if c.hi < 1.0 => Some(false),
        _ => None,
    }
}

fn index(stats: &SeriesStats) -> Option<f64> {
    stats.values.and_then(|v| v.index)
}

pub fn versus_val_loss(metric: &QuantityAnalysis, val_loss: &QuantityAnalysis) -> VersusValLoss {
    match (index(&metric.raw), index(&val_loss.raw)) {
        (Some(m), Some(v)) if v > 0.0 => {
            let ratio = m / v;
            let ci = metric.over_val_loss_ci;
            match (side_of_one(ci), ci) {
                (Some(true), Some(ci)) => VersusValLoss::More { ratio, ci },
                (Some(false), Some(ci)) => VersusValLoss::Less { ratio, ci },
                _ => VersusValLoss::NotResolved { ratio, ci },
            }
        }
        (Some(m), Some(_)) if m > 0.0 => VersusValLoss::ValLossFlat,
        (Some(_), Some(_)) => VersusValLoss::NotResolved {
            ratio: 1.0,
            ci: None,
        },
        _ => VersusValLoss::Unknown,
    }
}

/// EMA's effect on a metric's swing: the EMA/raw ratio of resid_sd and its interval.
pub fn ema_effect(metric: &QuantityAnalysis) -> EmaEffect {
    match metric.ema_over_raw_resid() {
        Some(ratio) => {
            let ci = metric.ema_over_raw_resid_ci;
            match (side_of_one(ci), ci) {
                (Some(false), Some(ci)) => EmaEffect::Damped { ratio, ci },
                (Some(true), Some(ci)) => EmaEffect::Amplified { ratio, ci },
                _ => EmaEffect::NotResolved { ratio, ci },
            }
        }
        None => EmaEffect::Unknown,
    }
}

/// The verdict of one run, as Markdown lines: a headline, then a bullet per generation metric.
pub fn verdict_lines(run: &RunAnalysis) -> Vec<String> {
    let val_loss = run.val_loss();
    let metrics: Vec<&QuantityAnalysis> = run
        .quantities
        .iter()
        .filter(|q| q.quantity.is_long_horizon())
        .collect();
    if metrics.is_empty() {
        return vec![format!(
            "No long-horizon metrics were logged (no `gen_*` or `rollout_*` keys), so there is \
             nothing to compare val loss with. Val loss: {}.",
            describe_val_loss(val_loss)
        )];
    }
    // A BC run's closed loop is the rollout, and its val loss the BC loss on held-out episodes.
    let (noun, loss_note) = if metrics.iter().all(|m| m.quantity.is_rollout()) {
        (
            "Rollout metrics oscillate",
            " (the BC loss on held-out expert data)",
        )
    } else {
        ("Generation quality oscillates", "")
    };
    let versus: Vec<VersusValLoss> = metrics
        .iter()
        .map(|m| versus_val_loss(m, val_loss))
        .collect();
    let effects: Vec<EmaEffect> = metrics.iter().map(|m| ema_effect(m)).collect();
    let more = versus
        .iter()
        .filter(|v| matches!(v, VersusValLoss::More { .. } | VersusValLoss::ValLossFlat))
        .count();
    let versus_unresolved = versus
        .iter()
        .filter(|v| matches!(v, VersusValLoss::NotResolved { .. }))
        .count();
    let ema_unresolved = effects
        .iter()
        .filter(|e| matches!(e, EmaEffect::NotResolved { .. }))
        .count();
    let amplified = effects
        .iter()
        .filter(|e| matches!(e, EmaEffect::Amplified { .. }))
        .count();
    let compared = versus
        .iter()
        .filter(|v| !matches!(v, VersusValLoss::Unknown))
        .count();
    let damped = effects
        .iter()
        .filter(|e| matches!(e, EmaEffect::Damped { .. }))
        .count();
    let judged = effects
        .iter()
        .filter(|e| !matches!(e, EmaEffect::Unknown))
        .count();
    let not_compared = match metrics.len() - compared {
        0 => String::new(),
        n => format!("; {n} not comparable"),
    };
    let versus_unresolved = match versus_unresolved {
        0 => String::new(),
        n => format!("; {n} not resolved"),
    };
    let mut ema_rest = Vec::new();
    if amplified > 0 {
        ema_rest.push(format!("raised it in {amplified} (interval above 1)"));
    }
    if ema_unresolved > 0 {
        ema_rest.push(format!("did not resolve in {ema_unresolved}"));
    }
    let ema_rest = if ema_rest.is_empty() {
        String::new()
    } else {
        format!("; it {}", ema_rest.join(" and "))
    };
    let unresolved_note = if versus_unresolved.is_empty() && ema_unresolved == 0 {
        String::new()
    } else {
        format!(
            " Not resolved: the 95% interval includes 1, or the window has fewer than {} evaluations, too few for an interval; more evaluations or seeds would decide them.",
            crate::eval::bootstrap::MIN_DIFFERENCES + 1
        )
    };
    if compared == 0 && judged == 0 {
        // A short run, or a window that starts late: "0 of 0" would read as a finding.
        return vec![format!(
            "**Too few evaluations to judge**: none of the {} long-horizon series has enough \
             evaluations in the window the statistics use (at least 4), so none is compared \
             with val loss and EMA's effect is not judged. Evaluate more often \
             (`eval.generate_every`, `eval.rollout_every`), train longer, or widen the window \
             (`--from-step 0`). Val loss: {}.",
            metrics.len(),
            describe_val_loss(val_loss)
        )];
    }
    let mut lines = vec![
        format!(
            "**{noun} more than val loss{loss_note} in {more} of {compared} metric \
             series** (raw weights, 95% interval above 1{not_compared}{versus_unresolved}). \
             **EMA lowered the swing (resid_sd, the metric's own units) in {damped} of \
             {judged}** (interval below 1){ema_rest}.{unresolved_note} Val loss: {}.",
            describe_val_loss(val_loss)
        ),
        String::new(),
    ];
    for ((metric, versus), effect) in metrics.iter().zip(&versus).zip(&effects) {
        lines.push(format!(
            "- **{}**: {}; {}.",
            metric.quantity.label(),
            describe_versus(metric, val_loss, *versus),
            describe_effect(metric, *effect)
        ));
    }
    lines
}

/// "[lo, hi]", or "—" when the bootstrap had nothing to resample.
pub fn format_interval(ci: Option<Interval>) -> String {
    ci.map_or_else(
        || "—".to_string(),
        |c| format!("[{}, {}]", format_ratio(c.lo), format_ratio(c.hi)),
    )
}

/// The value of a series that never changes.
fn constant_value(series: &Series) -> Option<f64> {
    let first = *series.values.first()?;
    series.values.iter().all(|v| *v == first).then_some(first)
}

fn describe_val_loss(val_loss: &QuantityAnalysis) -> String {
    match (index(&val_loss.raw), index(&val_loss.ema)) {
        (Some(raw), Some(ema)) => format!(
            "index {} raw, {} EMA",
            format_number(raw),
            format_number(ema)
        ),
        (Some(raw), None) => format!("index {} raw", format_number(raw)),
        _ => format!(
            "too few evaluations ({} raw, {} EMA)",
            val_loss.raw.evaluations, val_loss.ema.evaluations
        ),
    }
}

fn describe_versus(
    metric: &QuantityAnalysis,
    val_loss: &QuantityAnalysis,
    versus: VersusValLoss,
) -> String {
    let (m, v) = (index(&metric.raw), index(&val_loss.raw));
    let show = |x: Option<f64>| x.map_or_else(|| "—".to_string(), format_number);
    match versus {
        VersusValLoss::More { ratio, ci } => format!(
            "oscillates more than val loss (index {}, {}× val loss's {}, 95% interval {})",
            show(m),
            format_ratio(ratio),
            show(v),
            format_interval(Some(ci))
        ),
        VersusValLoss::Less { ratio, ci } => format!(
            "oscillates less than val loss (index {}, {}× val loss's {}, 95% interval {})",
            show(m),
            format_ratio(ratio),
            show(v),
            format_interval(Some(ci))
        ),
        VersusValLoss::NotResolved { ratio, ci } => format!(
            "not resolved against val loss (index {}, {}× val loss's {}, 95% interval {})",
            show(m),
            format_ratio(ratio),
            show(v),
            format_interval(ci)
        ),
        VersusValLoss::ValLossFlat => format!(
            "oscillates more than val loss (index {}, while val loss's is 0)",
            show(m)
        ),
        VersusValLoss::Unknown if metric.raw.values.is_none() => format!(
            "too few evaluations to compare with val loss ({} raw)",
            metric.raw.evaluations
        ),
        VersusValLoss::Unknown if val_loss.raw.values.is_none() => {
            "val loss has too few evaluations to compare with".to_string()
        }
        VersusValLoss::Unknown => match constant_value(metric.series(Weights::Raw)) {
            Some(v) => format!(
                "constant at {} over all {} evaluations (raw): nothing oscillates",
                format_number(v),
                metric.raw.evaluations
            ),
            // A pool has no series of its own: some seed's index is undefined.
            None if metric.series(Weights::Raw).is_empty() => {
                "oscillation index undefined in some seed (mean |x| is 0 there)".to_string()
            }
            None => "oscillation index undefined (mean |x| is 0)".to_string(),
        },
    }
}

fn describe_effect(metric: &QuantityAnalysis, effect: EmaEffect) -> String {
    let show = |s: &SeriesStats| index(s).map_or_else(|| "—".to_string(), format_number);
    let (raw, ema) = (show(&metric.raw), show(&metric.ema));
    // The normalised index, beside the absolute swing that decides: it divides by the level, so
    // it differs where EMA moves the level.
    let by_index = match (index(&metric.raw), index(&metric.ema)) {
        (Some(r), Some(e)) if r > 0.0 => format!(
            "; index {raw} → {ema}, EMA/raw {}, 95% interval {}",
            format_ratio(e / r),
            format_interval(metric.ema_over_raw_ci)
        ),
        _ => format!("; index {raw} → {ema}"),
    };
    let [ema_vals, raw_vals] = &metric.inputs.ema_raw;
    if !ema_vals.is_empty() && ema_vals == raw_vals {
        // E.g. a run that ended before ema.burn_in: "not resolved" would invite more seeds.
        return "EMA equals the raw weights at every evaluation in the window (the EMA had not \
                left its burn-in, ema.burn_in): nothing to compare"
            .to_string();
    }
    match effect {
        EmaEffect::Damped { ratio, ci } => format!(
            "EMA damped it (EMA/raw resid_sd {}, 95% interval {}{by_index})",
            format_ratio(ratio),
            format_interval(Some(ci))
        ),
        EmaEffect::NotResolved { ratio, ci } => format!(
            "EMA's effect is not resolved (EMA/raw resid_sd {}, 95% interval {}{by_index})",
            format_ratio(ratio),
            format_interval(ci)
        ),
        EmaEffect::Amplified { ratio, ci } => format!(
            "EMA made it swing more (EMA/raw resid_sd {}, 95% interval {}{by_index})",
            format_ratio(ratio),
            format_interval(Some(ci))
        ),
        EmaEffect::Unknown if metric.ema.values.is_none() => {
            format!("EMA: too few evaluations ({})", metric.ema.evaluations)
        }
        EmaEffect::Unknown
            if index(&metric.raw) == Some(0.0)
                || constant_value(metric.series(Weights::Raw)).is_some() =>
        {
            "no raw oscillation for EMA to change".to_string()
        }
        EmaEffect::Unknown => match constant_value(metric.series(Weights::Ema)) {
            // E.g. an EMA policy that never fell: its series is 0 throughout, whose index is
            // undefined (mean |x| = 0), while the raw one swings.
            Some(v) => format!(
                "EMA removed the oscillation: constant at {} over all {} evaluations (raw index {raw})",
                format_number(v),
                metric.ema.evaluations
            ),
            None => format!("EMA's effect is undefined (a resid_sd is missing){by_index}"),
        },
    }
}
