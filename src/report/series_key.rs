//! The names of evaluation series in `metrics.jsonl`, parsed into what they measure.
//!
//! A run logs, per evaluation and per weights (`raw`, `ema`):
//! - `val_loss_<weights>`;
//! - `val_loss_pos_<lo>_<hi>_<weights>`: teacher-forced loss over positions lo..hi (`hi` may be
//!   `end`);
//! - `gen_<metric>_<mode>_<weights>`: a generation-quality metric for greedy or sampled
//!   generations. The metric name may itself hold underscores (`longest_span`, `judge_nll`), so
//!   the weights and the mode are taken off the end and what remains is the metric. Metrics this
//!   module has never heard of are reported too, so a new metric needs no change here;
//! - `rollout_<metric>_<weights>`: a behaviour-cloning rollout metric (`return_mean`,
//!   `return_min`, `fell`, `length_mean`, `action_err`; `return_std`, a spread within one
//!   evaluation, is left to metrics.jsonl). For BC, `val_loss_*` is the BC loss on held-out
//!   expert episodes.

use std::cmp::Ordering;

/// Which weights a value was measured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weights {
    Raw,
    Ema,
}

impl Weights {
    pub const BOTH: [Weights; 2] = [Weights::Raw, Weights::Ema];

    /// The key suffix in metrics.jsonl.
    pub fn suffix(self) -> &'static str {
        match self {
            Weights::Raw => "raw",
            Weights::Ema => "ema",
        }
    }

    /// How the report names them.
    pub fn label(self) -> &'static str {
        match self {
            Weights::Raw => "raw",
            Weights::Ema => "EMA",
        }
    }
}

/// How the generations were decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Greedy,
    Sample,
}

impl Mode {
    fn suffix(self) -> &'static str {
        match self {
            Mode::Greedy => "greedy",
            Mode::Sample => "sample",
        }
    }
}

/// The generation metrics issue 3 defines, in the order the report lists them; anything else
/// follows alphabetically.
pub const KNOWN_METRICS: [(&str, &str); 9] = [
    ("rep2", "fraction of repeated 2-grams"),
    ("rep4", "fraction of repeated 4-grams"),
    ("distinct2", "distinct 2-grams / all 2-grams"),
    ("distinct4", "distinct 4-grams / all 4-grams"),
    ("longest_span", "longest repeated token span"),
    (
        "horizon",
        "butterfly horizon, the median over prompts of the first token position where the greedy text departs from the previous evaluation's",
    ),
    ("valid", "fraction of generated stories that pass the synthetic corpus's checker"),
    ("judge_nll", "judge model's per-token NLL of the continuation"),
    ("length", "generated tokens (generation stops early at end-of-text)"),
];

/// The rollout metrics of behaviour cloning, in the order the report lists them.
pub const ROLLOUT_METRICS: [(&str, &str); 5] = [
    ("return_mean", "mean return over the evaluation's episodes"),
    ("return_min", "worst episode's return"),
    (
        "fell",
        "fraction of episodes that ended unhealthy before the horizon",
    ),
    ("length_mean", "mean episode length (steps)"),
    (
        "action_err",
        "mean squared action error against the expert on the states the policy visits",
    ),
];

/// What a series measures; each exists once per [`Weights`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Quantity {
    ValLoss,
    /// Teacher-forced loss over positions `lo..hi` (`None`: to the end of the window).
    PositionLoss {
        lo: u64,
        hi: Option<u64>,
    },
    Generation {
        metric: String,
        mode: Mode,
    },
    /// A BC rollout metric, one of [`ROLLOUT_METRICS`].
    Rollout {
        metric: String,
    },
}

impl Quantity {
    /// The metrics.jsonl key of this quantity for `weights`.
    pub fn key(&self, weights: Weights) -> String {
        format!("{}_{}", self.file_stem(), weights.suffix())
    }

    /// A file-name-safe stem, also the key without its weights suffix.
    pub fn file_stem(&self) -> String {
        match self {
            Quantity::ValLoss => "val_loss".to_string(),
            Quantity::PositionLoss { lo, hi } => format!("val_loss_pos_{lo}_{}", hi_text(*hi)),
            Quantity::Generation { metric, mode } => format!("gen_{metric}_{}", mode.suffix()),
            Quantity::Rollout { metric } => format!("rollout_{metric}"),
        }
    }

    /// How the report names it.
    pub fn label(&self) -> String {
        match self {
            Quantity::ValLoss => "val loss".to_string(),
            Quantity::PositionLoss { lo, hi } => {
                format!("val loss, positions {lo}–{}", hi_text(*hi))
            }
            Quantity::Generation { metric, mode } => format!("{metric} ({})", mode.suffix()),
            Quantity::Rollout { metric } => format!("rollout {}", metric.replace('_', " ")),
        }
    }

    /// A long-horizon (closed-loop) quality: a generation metric or a rollout metric.
    pub fn is_long_horizon(&self) -> bool {
        matches!(self, Quantity::Generation { .. } | Quantity::Rollout { .. })
    }

    pub fn is_rollout(&self) -> bool {
        matches!(self, Quantity::Rollout { .. })
    }

    /// Val loss first, then position buckets by position, then generation metrics in
    /// [`KNOWN_METRICS`] order (unknown ones alphabetically after), greedy before sample.
    fn sort_key(&self) -> (u8, u64, u64, usize, &str, Option<Mode>) {
        match self {
            Quantity::ValLoss => (0, 0, 0, 0, "", None),
            Quantity::PositionLoss { lo, hi } => (1, *lo, hi.unwrap_or(u64::MAX), 0, "", None),
            Quantity::Generation { metric, mode } => {
                let rank = KNOWN_METRICS
                    .iter()
                    .position(|(name, _)| name == metric)
                    .unwrap_or(KNOWN_METRICS.len());
                (2, 0, 0, rank, metric.as_str(), Some(*mode))
            }
            Quantity::Rollout { metric } => {
                let rank = ROLLOUT_METRICS
                    .iter()
                    .position(|(name, _)| name == metric)
                    .unwrap_or(ROLLOUT_METRICS.len());
                let horizon = metric
                    .strip_prefix("cost_h")
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(0);
                (3, horizon, 0, rank, metric.as_str(), None)
            }
        }
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn hi_text(hi: Option<u64>) -> String {
    hi.map_or_else(|| "end".to_string(), |h| h.to_string())
}

/// What a metrics.jsonl key measures, or `None` for keys that are not evaluation series
/// (`step`, `train_loss`, …) or that this module cannot read.
pub fn parse_key(key: &str) -> Option<(Quantity, Weights)> {
    let (rest, weights) = if let Some(rest) = key.strip_suffix("_raw") {
        (rest, Weights::Raw)
    } else if let Some(rest) = key.strip_suffix("_ema") {
        (rest, Weights::Ema)
    } else {
        return None;
    };
    if rest == "val_loss" {
        return Some((Quantity::ValLoss, weights));
    }
    if let Some(bucket) = rest.strip_prefix("val_loss_pos_") {
        let (lo, hi) = bucket.split_once('_')?;
        let lo = lo.parse().ok()?;
        let hi = match hi {
            "end" => None,
            number => Some(number.parse().ok()?),
        };
        return Some((Quantity::PositionLoss { lo, hi }, weights));
    }
    if let Some(metric) = rest.strip_prefix("rollout_") {
        // The linear testbed's `cost_h<H>`, and the rollout metrics of the expert tasks.
        let cost = metric
            .strip_prefix("cost_h")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()));
        return (cost || ROLLOUT_METRICS.iter().any(|(name, _)| *name == metric)).then(|| {
            (
                Quantity::Rollout {
                    metric: metric.to_string(),
                },
                weights,
            )
        });
    }
    let body = rest.strip_prefix("gen_")?;
    let (metric, mode) = if let Some(metric) = body.strip_suffix("_greedy") {
        (metric, Mode::Greedy)
    } else if let Some(metric) = body.strip_suffix("_sample") {
        (metric, Mode::Sample)
    } else {
        return None;
    };
    // `invalid_<reason>` splits `valid`'s failures by cause: a diagnosis, not a quality series
    // of its own, so the report leaves it to metrics.jsonl rather than plotting 12 more curves.
    if metric.starts_with("invalid_") {
        return None;
    }
    // The metric becomes part of a file name: keep to characters that are safe everywhere.
    let safe = !metric.is_empty()
        && metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    safe.then(|| {
        (
            Quantity::Generation {
                metric: metric.to_string(),
                mode,
            },
            weights,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(metric: &str, mode: Mode) -> Quantity {
        Quantity::Generation {
            metric: metric.to_string(),
            mode,
        }
    }

    #[test]
    fn keys_parse_and_round_trip() {
        let cases = [
            ("val_loss_raw", Quantity::ValLoss, Weights::Raw),
            ("val_loss_ema", Quantity::ValLoss, Weights::Ema),
            (
                "val_loss_pos_0_64_raw",
                Quantity::PositionLoss {
                    lo: 0,
                    hi: Some(64),
                },
                Weights::Raw,
            ),
            (
                "val_loss_pos_256_end_ema",
                Quantity::PositionLoss { lo: 256, hi: None },
                Weights::Ema,
            ),
            (
                "gen_rep4_greedy_raw",
                generation("rep4", Mode::Greedy),
                Weights::Raw,
            ),
            (
                "gen_longest_span_sample_ema",
                generation("longest_span", Mode::Sample),
                Weights::Ema,
            ),
            (
                "gen_judge_nll_sample_raw",
                generation("judge_nll", Mode::Sample),
                Weights::Raw,
            ),
            (
                "rollout_return_mean_ema",
                Quantity::Rollout {
                    metric: "return_mean".into(),
                },
                Weights::Ema,
            ),
            (
                "rollout_cost_h100_ema",
                Quantity::Rollout {
                    metric: "cost_h100".into(),
                },
                Weights::Ema,
            ),
            (
                "rollout_action_err_raw",
                Quantity::Rollout {
                    metric: "action_err".into(),
                },
                Weights::Raw,
            ),
        ];
        for (key, quantity, weights) in cases {
            assert_eq!(parse_key(key), Some((quantity.clone(), weights)), "{key}");
            assert_eq!(quantity.key(weights), key);
        }
    }

    #[test]
    fn other_keys_are_not_series() {
        for key in [
            "step",
            "tokens",
            "train_loss",
            "grad_norm",
            "tok_per_s",
            "lr",
            "val_loss",
            "gen_rep4_raw",
            "gen__greedy_raw",
            "gen_a/b_greedy_raw",
            "gen_invalid_object_mismatch_greedy_raw",
            "val_loss_pos_x_64_raw",
            "val_loss_pos_0_raw",
            "rollout_return_std_raw",
            "rollout_unknown_raw",
            "rollout_cost_h_raw",
            "rollout_cost_hx_raw",
        ] {
            assert_eq!(parse_key(key), None, "{key}");
        }
    }

    #[test]
    fn quantities_sort_as_the_report_lists_them() {
        let mut q = [
            generation("zeta", Mode::Greedy),
            generation("rep4", Mode::Sample),
            Quantity::PositionLoss { lo: 256, hi: None },
            generation("rep2", Mode::Greedy),
            Quantity::ValLoss,
            generation("rep4", Mode::Greedy),
            Quantity::PositionLoss {
                lo: 0,
                hi: Some(64),
            },
        ];
        q.sort();
        let labels: Vec<String> = q.iter().map(Quantity::label).collect();
        assert_eq!(
            labels,
            [
                "val loss",
                "val loss, positions 0–64",
                "val loss, positions 256–end",
                "rep2 (greedy)",
                "rep4 (greedy)",
                "rep4 (sample)",
                "zeta (greedy)"
            ]
        );
    }
}
