//! A BC run's `rollouts.jsonl` (one line per episode: `step`, `weights`, `seed`, `return`,
//! `length`, `fell`) as per-weights flip statistics of falling: a flip is a rollout start whose
//! episode changes between falling and not falling from one evaluation to the next.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::series_key::Weights;
use crate::eval::flips::{flip_stats, FlipStats};

#[derive(Deserialize)]
struct Line {
    step: u64,
    weights: String,
    seed: u64,
    fell: bool,
}

/// Flip statistics of falling per weights, over the evaluations at steps ≥ `from_step` and the
/// seeds present at every one of them; `None` when the run has no rollouts.jsonl.
pub fn read_fall_flips(
    run_dir: &Path,
    from_step: u64,
) -> Result<Option<Vec<(Weights, FlipStats)>>> {
    let path = run_dir.join("rollouts.jsonl");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    // weights → step → seed → fell
    let mut by: BTreeMap<String, BTreeMap<u64, BTreeMap<u64, bool>>> = BTreeMap::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(l)
            .with_context(|| format!("{} line {}: not a rollout record", path.display(), i + 1))?;
        if line.step < from_step {
            continue;
        }
        by.entry(line.weights)
            .or_default()
            .entry(line.step)
            .or_default()
            .insert(line.seed, line.fell);
    }
    let mut out = Vec::new();
    for w in Weights::BOTH {
        let Some(steps) = by.get(w.suffix()) else {
            continue;
        };
        let mut seeds: Option<BTreeSet<u64>> = None;
        for s in steps.values() {
            let here: BTreeSet<u64> = s.keys().copied().collect();
            seeds = Some(match seeds {
                None => here,
                Some(prev) => prev.intersection(&here).copied().collect(),
            });
        }
        let seeds = seeds.unwrap_or_default();
        let outcomes: Vec<Vec<bool>> = steps
            .values()
            .map(|s| seeds.iter().map(|k| s[k]).collect())
            .collect();
        if let Some(f) = flip_stats(&outcomes) {
            out.push((w, f));
        }
    }
    Ok(Some(out))
}
