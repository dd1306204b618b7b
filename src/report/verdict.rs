//! The few sentences at the top of a report: for each generation metric, does it oscillate more
//! than val loss (raw weights, oscillation indices compared), and what did EMA do to it (the
//! ratio of EMA's index to raw's).

use super::analysis::{QuantityAnalysis, RunAnalysis, SeriesStats};
use super::markdown::{format_number, format_ratio};
use super::metrics_file::Series;
use super::series_key::Weights;

/// EMA/raw index ratios inside [1 − this, 1 + this] count as "about the same".
pub const EMA_SAME_BAND: f64 = 0.1;

/// How a metric's raw oscillation compares with val loss's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VersusValLoss {
    More {
        ratio: f64,
    },
    NotMore {
        ratio: f64,
    },
    /// Val loss's index is 0 (a perfectly smooth trend) while the metric's is not.
    ValLossFlat,
    /// Some index is missing or undefined.
    Unknown,
}

/// What EMA did to a metric's oscillation index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EmaEffect {
    Damped { ratio: f64 },
    Same { ratio: f64 },
    Amplified { ratio: f64 },
    Unknown,
}

fn index(stats: &SeriesStats) -> Option<f64> {
    stats.values.and_then(|v| v.index)
}

pub fn versus_val_loss(metric: &QuantityAnalysis, val_loss: &QuantityAnalysis) -> VersusValLoss {
    match (index(&metric.raw), index(&val_loss.raw)) {
        (Some(m), Some(v)) if v > 0.0 => {
            let ratio = m / v;
            if ratio > 1.0 {
                VersusValLoss::More { ratio }
            } else {
                VersusValLoss::NotMore { ratio }
            }
        }
        (Some(m), Some(_)) if m > 0.0 => VersusValLoss::ValLossFlat,
        (Some(_), Some(_)) => VersusValLoss::NotMore { ratio: 1.0 },
        _ => VersusValLoss::Unknown,
    }
}

pub fn ema_effect(metric: &QuantityAnalysis) -> EmaEffect {
    match (index(&metric.raw), index(&metric.ema)) {
        (Some(raw), Some(ema)) if raw > 0.0 => {
            let ratio = ema / raw;
            if ratio < 1.0 - EMA_SAME_BAND {
                EmaEffect::Damped { ratio }
            } else if ratio > 1.0 + EMA_SAME_BAND {
                EmaEffect::Amplified { ratio }
            } else {
                EmaEffect::Same { ratio }
            }
        }
        _ => EmaEffect::Unknown,
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
            " (the BC loss on held-out expert episodes)",
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
    let mut lines = vec![
        format!(
            "**{noun} more than val loss{loss_note} in {more} of {compared} metric \
             series** (raw weights{not_compared}). **EMA lowered the oscillation index in \
             {damped} of {judged}.** Val loss: {}.",
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
        VersusValLoss::More { ratio } => format!(
            "oscillates more than val loss (index {}, {}× val loss's {})",
            show(m),
            format_ratio(ratio),
            show(v)
        ),
        VersusValLoss::NotMore { ratio } => format!(
            "does not oscillate more than val loss (index {}, {}× val loss's {})",
            show(m),
            format_ratio(ratio),
            show(v)
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
            None => "oscillation index undefined (mean |x| is 0)".to_string(),
        },
    }
}

fn describe_effect(metric: &QuantityAnalysis, effect: EmaEffect) -> String {
    let show = |s: &SeriesStats| index(s).map_or_else(|| "—".to_string(), format_number);
    let (raw, ema) = (show(&metric.raw), show(&metric.ema));
    match effect {
        EmaEffect::Damped { ratio } => format!(
            "EMA damped it (EMA/raw index {}: {raw} → {ema})",
            format_ratio(ratio)
        ),
        EmaEffect::Same { ratio } => format!(
            "EMA left it about the same (EMA/raw index {}: {raw} → {ema})",
            format_ratio(ratio)
        ),
        EmaEffect::Amplified { ratio } => format!(
            "EMA made it oscillate more (EMA/raw index {}: {raw} → {ema})",
            format_ratio(ratio)
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
        EmaEffect::Unknown => "EMA's effect is undefined (no raw index)".to_string(),
    }
}
