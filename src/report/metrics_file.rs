//! Reading a run's `metrics.jsonl` into per-key series over steps.
//!
//! Rows carry any subset of keys: a key that is absent (or `null`) at a step is simply not part
//! of that series there — never a zero. A step logged twice (a run resumed from a checkpoint
//! older than its last log line logs those steps again) keeps the later value of each key, since
//! that is the run the checkpoints continue.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::series_key::parse_key;

/// One series: values at increasing steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub steps: Vec<u64>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The points at the given steps only.
    pub fn at_steps(&self, steps: &BTreeSet<u64>) -> Series {
        let (steps, values) = self
            .steps
            .iter()
            .zip(&self.values)
            .filter(|(step, _)| steps.contains(step))
            .map(|(step, value)| (*step, *value))
            .unzip();
        Series { steps, values }
    }

    /// `(self, other)` restricted to the steps both have, so their differences pair
    /// consecutive common evaluations.
    pub fn paired_with(&self, other: &Series) -> (Series, Series) {
        let common: BTreeSet<u64> = self
            .steps
            .iter()
            .copied()
            .filter(|s| other.steps.binary_search(s).is_ok())
            .collect();
        (self.at_steps(&common), other.at_steps(&common))
    }
}

/// A parsed metrics.jsonl.
#[derive(Debug)]
pub struct MetricsFile {
    pub path: PathBuf,
    /// Key → value at each step where the key was logged.
    by_step: BTreeMap<u64, BTreeMap<String, f64>>,
}

impl MetricsFile {
    /// The rows at steps ≥ `step` (the statistics' window; `--from-step`).
    pub fn from_step(&self, step: u64) -> MetricsFile {
        MetricsFile {
            path: self.path.clone(),
            by_step: self
                .by_step
                .range(step..)
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        }
    }
}

/// The default start of the statistics' window: the first validation step after which the
/// val-loss trend (raw weights, centred moving average of width `window` over every
/// validation) still falls by less than 10% of its total descent. Before it, the early descent
/// dominates every index (a width-5 trend cannot follow it). `None` without 3 validations or
/// without a descent (then every step is used).
pub fn settled_step(metrics: &MetricsFile, window: usize) -> Option<u64> {
    let val = metrics.series("val_loss_raw");
    if val.len() < 3 {
        return None;
    }
    let trend = crate::eval::oscillation::trend(&val.values, window);
    let last = *trend.last()?;
    let descent = trend[0] - last;
    // NaN or no descent: nothing to skip.
    if descent.is_nan() || descent <= 0.0 {
        return None;
    }
    val.steps
        .iter()
        .zip(&trend)
        .find(|(_, t)| **t - last < 0.1 * descent)
        .map(|(s, _)| *s)
}

/// Reads `RUN_DIR/metrics.jsonl`.
pub fn read_metrics(run_dir: &Path) -> Result<MetricsFile> {
    if !run_dir.is_dir() {
        bail!("run directory {} does not exist", run_dir.display());
    }
    let path = run_dir.join("metrics.jsonl");
    if !path.is_file() {
        bail!(
            "{} has no metrics.jsonl: give a run directory (train.out_dir/<run>) that has logged at least one step",
            run_dir.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_metrics(&text, &path)
}

/// Parses metrics.jsonl text; `path` only names the file in errors.
pub fn parse_metrics(text: &str, path: &Path) -> Result<MetricsFile> {
    let mut by_step: BTreeMap<u64, BTreeMap<String, f64>> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_number = index + 1;
        let at = || format!("{} line {line_number}", path.display());
        let row: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not valid JSON", at()))?;
        let Some(object) = row.as_object() else {
            bail!("{}: expected a JSON object, found {row}", at());
        };
        let Some(step) = object.get("step").and_then(step_number) else {
            bail!(
                "{}: \"step\" is missing or not a non-negative integer",
                at()
            );
        };
        let values = by_step.entry(step).or_default();
        for (key, value) in object {
            // Only evaluation series are read; the trainer may log anything else.
            if key == "step" || parse_key(key).is_none() {
                continue;
            }
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::Number(n) => {
                    if let Some(v) = n.as_f64() {
                        values.insert(key.clone(), v);
                    }
                }
                other => bail!("{}: \"{key}\" is {other}, not a number", at()),
            }
        }
        // Keys outside the series set (train_loss, tokens, …) are kept too when numeric, for
        // the run summary.
        for key in ["tokens", "train_loss"] {
            if let Some(v) = object.get(key).and_then(serde_json::Value::as_f64) {
                values.insert(key.to_string(), v);
            }
        }
    }
    if by_step.is_empty() {
        bail!(
            "{} is empty: the run has not logged a step yet",
            path.display()
        );
    }
    Ok(MetricsFile {
        path: path.to_path_buf(),
        by_step,
    })
}

/// A step as a non-negative integer; `20.0` counts (a writer may print every number as a
/// float), `20.5` does not.
fn step_number(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|v| *v >= 0.0 && v.fract() == 0.0 && *v < u64::MAX as f64)
            .map(|v| v as u64)
    })
}

impl MetricsFile {
    /// The series of `key` over the steps where it was logged.
    pub fn series(&self, key: &str) -> Series {
        let (steps, values) = self
            .by_step
            .iter()
            .filter_map(|(step, values)| values.get(key).map(|v| (*step, *v)))
            .unzip();
        Series { steps, values }
    }

    /// Every key logged at some step.
    pub fn keys(&self) -> BTreeSet<&str> {
        self.by_step
            .values()
            .flat_map(|values| values.keys().map(String::as_str))
            .collect()
    }

    /// Steps at which any of the keys `wanted` says yes to was logged.
    pub fn steps_with(&self, wanted: impl Fn(&str) -> bool) -> BTreeSet<u64> {
        self.by_step
            .iter()
            .filter(|(_, values)| values.keys().any(|k| wanted(k)))
            .map(|(step, _)| *step)
            .collect()
    }

    /// The last logged step.
    pub fn last_step(&self) -> Option<u64> {
        self.by_step.keys().next_back().copied()
    }

    /// The last logged value of `key`.
    pub fn last_value(&self, key: &str) -> Option<f64> {
        self.by_step
            .values()
            .rev()
            .find_map(|v| v.get(key).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A val loss that falls 10 → 1 over steps 1..10 and stays at 1: the trend has less than
    /// 10% of its descent left from the step where it first comes within 0.9 of the end.
    #[test]
    fn the_default_window_starts_where_the_descent_has_settled() {
        let mut text = String::new();
        for step in 1..=30u64 {
            let v = if step <= 10 { 11.0 - step as f64 } else { 1.0 };
            text.push_str(&format!("{{\"step\":{step},\"val_loss_raw\":{v}}}\n"));
        }
        let m = parse_metrics(&text, Path::new("m.jsonl")).unwrap();
        let s = settled_step(&m, 1).unwrap();
        assert_eq!(
            s, 10,
            "no smoothing: 1 at step 10 is within 10% of the descent"
        );
        assert_eq!(m.from_step(s).series("val_loss_raw").len(), 21);
        // A flat series has nothing to skip.
        let flat = parse_metrics("{\"step\":1,\"val_loss_raw\":1}\n{\"step\":2,\"val_loss_raw\":1}\n{\"step\":3,\"val_loss_raw\":1}\n", Path::new("m")).unwrap();
        assert_eq!(settled_step(&flat, 5), None);
    }

    fn parse(text: &str) -> Result<MetricsFile> {
        parse_metrics(text, Path::new("run/metrics.jsonl"))
    }

    #[test]
    fn absent_and_null_keys_are_not_zero() {
        let m = parse(concat!(
            "{\"step\":1,\"train_loss\":5.0}\n",
            "{\"step\":2,\"val_loss_raw\":4.0,\"gen_rep4_greedy_raw\":0.5}\n",
            "\n",
            "{\"step\":3.0,\"val_loss_raw\":3.5,\"gen_rep4_greedy_raw\":null}\n",
        ))
        .expect("parses");
        assert_eq!(
            m.series("val_loss_raw"),
            Series {
                steps: vec![2, 3],
                values: vec![4.0, 3.5]
            }
        );
        assert_eq!(m.series("gen_rep4_greedy_raw").steps, vec![2]);
        assert!(m.series("val_loss_ema").is_empty());
        assert_eq!(m.last_step(), Some(3));
        assert_eq!(m.last_value("train_loss"), Some(5.0));
    }

    #[test]
    fn a_relogged_step_keeps_the_later_value() {
        let m = parse(concat!(
            "{\"step\":5,\"val_loss_raw\":4.0}\n",
            "{\"step\":3,\"val_loss_raw\":4.5}\n",
            "{\"step\":5,\"val_loss_raw\":3.9}\n",
        ))
        .expect("parses");
        assert_eq!(m.series("val_loss_raw").steps, vec![3, 5]);
        assert_eq!(m.series("val_loss_raw").values, vec![4.5, 3.9]);
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        for (text, says) in [
            ("{\"step\":1}\n{\"step\":2,\n", "line 2: not valid JSON"),
            ("{\"step\":1}\n\n[1,2]\n", "line 3: expected a JSON object"),
            ("{\"lr\":1}\n", "line 1: \"step\" is missing"),
            ("{\"step\":-1}\n", "line 1: \"step\" is missing"),
            ("{\"step\":2.5}\n", "line 1: \"step\" is missing"),
            (
                "{\"step\":1,\"val_loss_raw\":\"x\"}\n",
                "line 1: \"val_loss_raw\" is \"x\", not a number",
            ),
        ] {
            let err = format!("{:#}", parse(text).expect_err(text));
            assert!(err.contains("run/metrics.jsonl"), "{err}");
            assert!(err.contains(says), "{err}");
        }
        assert!(format!("{:#}", parse("\n").expect_err("empty")).contains("is empty"));
    }

    #[test]
    fn pairing_keeps_common_steps() {
        let a = Series {
            steps: vec![1, 2, 3, 5],
            values: vec![1.0, 2.0, 3.0, 5.0],
        };
        let b = Series {
            steps: vec![2, 3, 4, 5],
            values: vec![20.0, 30.0, 40.0, 50.0],
        };
        let (pa, pb) = a.paired_with(&b);
        assert_eq!(pa.values, vec![2.0, 3.0, 5.0]);
        assert_eq!(pb.values, vec![20.0, 30.0, 50.0]);
    }
}
