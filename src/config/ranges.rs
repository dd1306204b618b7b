//! The one table of allowed ranges for every number a user gives lmtrain: config keys (also
//! through `--set`) and the numeric flags of the commands. A value outside its range, or not a
//! finite number, is an error naming the key and the range; nothing is clamped or reinterpreted
//! silently. New numeric options add their row here; a test walks every row.

use std::fmt;

use anyhow::{bail, Result};

/// An interval of allowed values (bounds may be infinite; a value must also be finite).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f64,
    pub min_inclusive: bool,
    pub max: f64,
    pub max_inclusive: bool,
}

impl Range {
    pub const fn new(min: f64, min_inclusive: bool, max: f64, max_inclusive: bool) -> Self {
        Self {
            min,
            min_inclusive,
            max,
            max_inclusive,
        }
    }

    /// x ≥ `min`.
    pub const fn at_least(min: f64) -> Self {
        Self::new(min, true, f64::INFINITY, false)
    }

    /// x > `min`.
    pub const fn above(min: f64) -> Self {
        Self::new(min, false, f64::INFINITY, false)
    }

    pub fn contains(&self, x: f64) -> bool {
        x.is_finite()
            && (x > self.min || (self.min_inclusive && x == self.min))
            && (x < self.max || (self.max_inclusive && x == self.max))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |x: f64| {
            if x.is_infinite() {
                "∞".to_string()
            } else {
                format!("{x}")
            }
        };
        if self.max.is_infinite() {
            let op = if self.min_inclusive { "≥" } else { ">" };
            return write!(f, "a finite number {op} {}", num(self.min));
        }
        write!(
            f,
            "a number in {}{}, {}{}",
            if self.min_inclusive { "[" } else { "(" },
            num(self.min),
            num(self.max),
            if self.max_inclusive { "]" } else { ")" }
        )
    }
}

/// One row: the key as the user writes it (`optim.lr`, `sample --temperature`), its range and
/// why, when the reason is not obvious.
pub struct Rule {
    pub key: &'static str,
    pub range: Range,
    pub note: &'static str,
}

const fn rule(key: &'static str, range: Range, note: &'static str) -> Rule {
    Rule { key, range, note }
}

const POSITIVE: Range = Range::above(0.0);
const NON_NEGATIVE: Range = Range::at_least(0.0);
const AT_LEAST_ONE: Range = Range::at_least(1.0);
const PROBABILITY: Range = Range::new(0.0, true, 1.0, false);
const ANY: Range = Range::new(f64::NEG_INFINITY, false, f64::INFINITY, false);

/// Every numeric option and its range.
pub const RULES: &[Rule] = &[
    // The language-model config (and `--set`).
    rule("model.n_layer", AT_LEAST_ONE, ""),
    rule("model.n_head", AT_LEAST_ONE, ""),
    rule("model.n_embd", AT_LEAST_ONE, ""),
    rule("model.block_size", AT_LEAST_ONE, ""),
    rule("model.dropout", PROBABILITY, ""),
    rule(
        "model.vocab_size",
        Range::at_least(257.0),
        " (256 byte tokens + end-of-text)",
    ),
    rule(
        "tokenizer.vocab_size",
        Range::at_least(257.0),
        " (256 byte tokens + end-of-text)",
    ),
    rule("data.val_fraction", PROBABILITY, ""),
    rule("data.tokenizer_docs", AT_LEAST_ONE, ""),
    rule("optim.lr", POSITIVE, ""),
    rule("optim.beta1", PROBABILITY, ""),
    rule("optim.beta2", PROBABILITY, ""),
    rule("optim.eps", POSITIVE, ""),
    rule("optim.weight_decay", NON_NEGATIVE, ""),
    rule("optim.grad_clip", NON_NEGATIVE, " (0 turns clipping off)"),
    rule("optim.grad_accum", AT_LEAST_ONE, ""),
    rule("schedule.min_lr", NON_NEGATIVE, " (and at most optim.lr)"),
    rule("ema.power", NON_NEGATIVE, ""),
    rule("ema.offset", AT_LEAST_ONE, " (so that β ≤ 1)"),
    rule("ema.min_beta", Range::new(0.0, true, 1.0, true), ""),
    rule("ema.decay", PROBABILITY, ""),
    rule("ema.every", AT_LEAST_ONE, ""),
    rule("ema.bias_power", NON_NEGATIVE, " (η of kind = \"bema\")"),
    rule("ema.multiplier", POSITIVE, " (γ of kind = \"bema\")"),
    rule("train.max_steps", AT_LEAST_ONE, ""),
    rule("train.batch_size", AT_LEAST_ONE, ""),
    rule("train.log_every", AT_LEAST_ONE, ""),
    rule(
        "train.rollback_lr_factor",
        Range::new(0.0, false, 1.0, true),
        "",
    ),
    rule(
        "train.step_timeout_s",
        NON_NEGATIVE,
        " (seconds; 0 turns the watchdog off)",
    ),
    rule("eval.val_every", AT_LEAST_ONE, ""),
    rule("eval.val_windows", AT_LEAST_ONE, ""),
    rule("eval.temperature", NON_NEGATIVE, " (0 is greedy)"),
    rule("checkpoint.every", AT_LEAST_ONE, ""),
    rule("checkpoint.keep_last", AT_LEAST_ONE, ""),
    // The behaviour-cloning config.
    rule("data.episodes", AT_LEAST_ONE, ""),
    rule("data.obs_std_floor", POSITIVE, ""),
    rule("policy.hidden", AT_LEAST_ONE, " (each width)"),
    rule("policy.n_layer", AT_LEAST_ONE, ""),
    rule("policy.n_head", AT_LEAST_ONE, ""),
    rule("policy.n_embd", AT_LEAST_ONE, ""),
    rule("policy.history", AT_LEAST_ONE, ""),
    rule("eval.rollouts", AT_LEAST_ONE, ""),
    rule("eval.horizon", AT_LEAST_ONE, ""),
    rule("eval.horizons", AT_LEAST_ONE, " (each horizon)"),
    rule("linear.dim", AT_LEAST_ONE, ""),
    rule("linear.noise", NON_NEGATIVE, ""),
    rule("linear.samples", AT_LEAST_ONE, ""),
    rule("linear.val_samples", AT_LEAST_ONE, ""),
    rule("linear.a_scale", NON_NEGATIVE, ""),
    // The expert (SAC) config.
    rule("sac.total_steps", AT_LEAST_ONE, ""),
    rule("sac.batch_size", AT_LEAST_ONE, ""),
    rule("sac.gamma", PROBABILITY, ""),
    rule("sac.tau", Range::new(0.0, false, 1.0, true), ""),
    rule("sac.policy_lr", POSITIVE, ""),
    rule("sac.q_lr", POSITIVE, ""),
    rule("sac.policy_every", AT_LEAST_ONE, ""),
    rule("sac.alpha", POSITIVE, ""),
    rule("sac.log_std_min", ANY, " (below sac.log_std_max)"),
    rule("sac.log_std_max", ANY, " (above sac.log_std_min)"),
    // Command-line flags.
    rule("sample --temperature", NON_NEGATIVE, " (0 is greedy)"),
    rule("sample --tokens", AT_LEAST_ONE, ""),
    rule(
        "report --trend-window",
        AT_LEAST_ONE,
        " (and odd: a centred moving trend needs a middle point)",
    ),
    rule("bench --lr", POSITIVE, ""),
    rule("bench --peak-tflops", POSITIVE, ""),
    rule("bench --steps", AT_LEAST_ONE, ""),
    rule("check-ops --max-rel-f32", POSITIVE, ""),
    rule("check-nccl --mib", POSITIVE, " (MiB)"),
    rule("check-ops --max-rel-bf16", POSITIVE, ""),
    rule("gemm-bench --reps", AT_LEAST_ONE, ""),
    rule("gemm-bench --samples", AT_LEAST_ONE, ""),
    rule("warmup --steps", AT_LEAST_ONE, ""),
    rule("expert eval --episodes", AT_LEAST_ONE, ""),
    rule("expert export --episodes", AT_LEAST_ONE, ""),
    rule("expert collect --episodes", AT_LEAST_ONE, ""),
    rule("expert bench --steps", AT_LEAST_ONE, ""),
    rule("rollout --episodes", AT_LEAST_ONE, ""),
    rule("landscape --radius", POSITIVE, ""),
    rule(
        "landscape --points",
        Range::at_least(3.0),
        " (and odd, so that s = 0 is one of them)",
    ),
    rule("landscape --episodes", AT_LEAST_ONE, ""),
    rule("landscape --val-windows", AT_LEAST_ONE, ""),
    rule("rollout --horizon", AT_LEAST_ONE, ""),
];

/// The rule for `key`; a key missing from the table is a bug in lmtrain, reported as such.
pub fn rule_for(key: &str) -> Result<&'static Rule> {
    match RULES.iter().find(|r| r.key == key) {
        Some(r) => Ok(r),
        None => bail!("internal error: no allowed range is defined for {key}; please report this"),
    }
}

/// Checks `value` against the table's row for `key`.
pub fn check(key: &str, value: f64) -> Result<()> {
    let r = rule_for(key)?;
    if !value.is_finite() {
        bail!(
            "{key} = {value} is not a finite number; allowed: {}{}",
            r.range,
            r.note
        );
    }
    if !r.range.contains(value) {
        bail!(
            "{key} = {value} is out of range; allowed: {}{}",
            r.range,
            r.note
        );
    }
    Ok(())
}

/// [`check`] for integer options.
pub fn check_int(key: &str, value: u64) -> Result<()> {
    check(key, value as f64)
}

/// A clap value parser for a float flag checked against the table's row `key`.
pub fn flag_f64(
    key: &'static str,
) -> impl Fn(&str) -> std::result::Result<f64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let v: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number"))?;
        check(key, v).map_err(|e| e.to_string())?;
        Ok(v)
    }
}

/// A clap value parser for an integer flag checked against the table's row `key`.
pub fn flag_u64(
    key: &'static str,
) -> impl Fn(&str) -> std::result::Result<u64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let v: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a whole number ≥ 0"))?;
        check_int(key, v).map_err(|e| e.to_string())?;
        Ok(v)
    }
}

/// As [`flag_u64`], for `usize` flags.
pub fn flag_usize(
    key: &'static str,
) -> impl Fn(&str) -> std::result::Result<usize, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let v: usize = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a whole number ≥ 0"))?;
        check_int(key, v as u64).map_err(|e| e.to_string())?;
        Ok(v)
    }
}

/// The attention dimensions of a `table` (`model`, `policy`): each at least 1 and `n_embd`
/// divisible by `n_head` (each head gets `n_embd / n_head` dimensions).
pub fn check_attention_dims(
    table: &str,
    n_layer: usize,
    n_head: usize,
    n_embd: usize,
) -> Result<()> {
    check_int(&format!("{table}.n_layer"), n_layer as u64)?;
    check_int(&format!("{table}.n_head"), n_head as u64)?;
    check_int(&format!("{table}.n_embd"), n_embd as u64)?;
    if !n_embd.is_multiple_of(n_head) {
        bail!(
            "{table}.n_embd = {n_embd} must be divisible by {table}.n_head = {n_head}: each head gets n_embd / n_head dimensions"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value just inside and just outside every bound, NaN and ±∞, for every row.
    #[test]
    fn every_row_accepts_its_range_and_refuses_the_rest() {
        for r in RULES {
            let g = r.range;
            assert!(check(r.key, f64::NAN).is_err(), "{} accepts NaN", r.key);
            assert!(check(r.key, f64::INFINITY).is_err(), "{} accepts ∞", r.key);
            assert!(
                check(r.key, f64::NEG_INFINITY).is_err(),
                "{} accepts −∞",
                r.key
            );
            if g.min.is_finite() {
                let below = g.min - 1e-9 * g.min.abs().max(1.0);
                let err = check(r.key, below).expect_err(r.key).to_string();
                assert!(err.contains(r.key) && err.contains("allowed"), "{err}");
                assert_eq!(
                    check(r.key, g.min).is_ok(),
                    g.min_inclusive,
                    "{} at its minimum",
                    r.key
                );
                assert!(
                    check(r.key, g.min + 1e-6 * g.min.abs().max(1.0)).is_ok()
                        || g.max - g.min < 1e-5,
                    "{}",
                    r.key
                );
            }
            if g.max.is_finite() {
                assert!(
                    check(r.key, g.max + 1e-9).is_err(),
                    "{} above its maximum",
                    r.key
                );
                assert_eq!(
                    check(r.key, g.max).is_ok(),
                    g.max_inclusive,
                    "{} at its maximum",
                    r.key
                );
            }
        }
    }

    #[test]
    fn keys_are_unique_and_unknown_keys_are_reported() {
        let mut keys: Vec<&str> = RULES.iter().map(|r| r.key).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key appears twice in RULES");
        assert!(check("no.such_key", 1.0)
            .unwrap_err()
            .to_string()
            .contains("internal error"));
        assert_eq!(
            Range::new(0.0, true, 1.0, false).to_string(),
            "a number in [0, 1)"
        );
        assert_eq!(POSITIVE.to_string(), "a finite number > 0");
    }
}
