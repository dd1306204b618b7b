//! A run's per-item outcome files as flip statistics per weights ([`crate::eval::flips`]):
//!
//! - BC, `rollouts.jsonl` (one line per episode: `step`, `weights`, `seed`, `return`, `length`,
//!   `fell`): an item is a rollout start (reset seed), its outcome whether the episode fell;
//! - LM, `generations.jsonl` (one line per generation, written by `src/lm/gen_eval.rs`: `step`,
//!   `weights`, `prompt_id`, `seed`, `mode`, `tokens`, `text` and, with `eval.story_checker`,
//!   `verdict`: "valid" or the checker's reason): an item is a prompt's *greedy* generation,
//!   its outcome the verdict — once as valid vs invalid, once as the verdict string itself, so a
//!   story that stays invalid for another reason (or another name or object in the reason) also
//!   flips.
//!
//! Only evaluations at steps ≥ the report's first step count, and only the items present at
//! every one of them. A step logged twice (a resumed run repeats the steps after its
//! checkpoint) keeps the later line, as metrics.jsonl does.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::series_key::Weights;
use crate::eval::flips::{flip_stats_by_item, FlipStats};

/// The verdict the story checker gives a valid story.
pub const VALID: &str = "valid";

/// weights → step → item → outcome.
type ByWeights<T> = BTreeMap<String, BTreeMap<u64, BTreeMap<u64, T>>>;

/// Every line of the JSONL file at `path` as a `T`, blank lines skipped; `None` when the file
/// does not exist.
fn read_jsonl<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Option<Vec<T>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not {what}", path.display(), i + 1))
        })
        .collect::<Result<Vec<T>>>()
        .map(Some)
}

/// Groups `(weights, step, item, outcome)` at steps ≥ `from_step`; a later line wins.
fn group<T>(records: impl Iterator<Item = (String, u64, u64, T)>, from_step: u64) -> ByWeights<T> {
    let mut by: ByWeights<T> = BTreeMap::new();
    for (weights, step, item, outcome) in records.filter(|r| r.1 >= from_step) {
        by.entry(weights)
            .or_default()
            .entry(step)
            .or_default()
            .insert(item, outcome);
    }
    by
}

#[derive(Deserialize)]
struct RolloutLine {
    step: u64,
    weights: String,
    seed: u64,
    fell: bool,
}

/// Flip statistics of falling per weights (p: the fraction of episodes that fell), over the
/// evaluations at steps ≥ `from_step`; `None` when the run has no rollouts.jsonl.
pub fn read_fall_flips(
    run_dir: &Path,
    from_step: u64,
) -> Result<Option<Vec<(Weights, FlipStats)>>> {
    let Some(lines) =
        read_jsonl::<RolloutLine>(&run_dir.join("rollouts.jsonl"), "a rollout record")?
    else {
        return Ok(None);
    };
    let by = group(
        lines
            .into_iter()
            .map(|l| (l.weights, l.step, l.seed, l.fell)),
        from_step,
    );
    Ok(Some(
        Weights::BOTH
            .into_iter()
            .filter_map(|w| Some((w, flip_stats_by_item(by.get(w.suffix())?, |fell| *fell)?)))
            .collect(),
    ))
}

#[derive(Deserialize)]
struct GenerationLine {
    step: u64,
    weights: String,
    prompt_id: u64,
    mode: String,
    #[serde(default)]
    verdict: Option<String>,
}

/// One weights' flip statistics of its greedy stories' verdicts.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictFlips {
    pub weights: Weights,
    /// Valid ↔ invalid (p: the fraction of valid stories).
    pub validity: FlipStats,
    /// Any change of verdict: valid ↔ invalid, or one failure reason to another (the verdict
    /// string differs); same p, expected 1 − Σ_k p_k² over the verdict strings' shares.
    pub verdict: FlipStats,
}

/// What a run's generations.jsonl says about flips.
#[derive(Clone, Debug, PartialEq)]
pub enum GenerationFlips {
    /// Greedy generations without verdicts (`eval.story_checker` off, or a run older than the
    /// verdicts): no flip rates.
    NoVerdicts,
    /// Per weights with at least 2 evaluations (possibly none).
    Stats(Vec<VerdictFlips>),
}

/// Flip statistics of the greedy stories' verdicts per weights, over the evaluations at steps
/// ≥ `from_step` (generations without a verdict are skipped); `None` when the run has no
/// generations.jsonl.
pub fn read_verdict_flips(run_dir: &Path, from_step: u64) -> Result<Option<GenerationFlips>> {
    let Some(lines) =
        read_jsonl::<GenerationLine>(&run_dir.join("generations.jsonl"), "a generation record")?
    else {
        return Ok(None);
    };
    let greedy: Vec<GenerationLine> = lines
        .into_iter()
        .filter(|l| l.mode == "greedy" && l.step >= from_step)
        .collect();
    if !greedy.is_empty() && greedy.iter().all(|l| l.verdict.is_none()) {
        return Ok(Some(GenerationFlips::NoVerdicts));
    }
    let by = group(
        greedy
            .into_iter()
            .filter_map(|l| Some((l.weights, l.step, l.prompt_id, l.verdict?))),
        from_step,
    );
    let stats = Weights::BOTH
        .into_iter()
        .filter_map(|w| {
            let verdicts = by.get(w.suffix())?;
            let valid: BTreeMap<u64, BTreeMap<u64, bool>> = verdicts
                .iter()
                .map(|(step, row)| (*step, row.iter().map(|(k, v)| (*k, v == VALID)).collect()))
                .collect();
            Some(VerdictFlips {
                weights: w,
                validity: flip_stats_by_item(&valid, |v| *v)?,
                verdict: flip_stats_by_item(verdicts, |v| v == VALID)?,
            })
        })
        .collect();
    Ok(Some(GenerationFlips::Stats(stats)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_the_files_has_no_flips_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_fall_flips(dir.path(), 0).expect("reads"), None);
        assert_eq!(read_verdict_flips(dir.path(), 0).expect("reads"), None);
        std::fs::write(
            dir.path().join("generations.jsonl"),
            "{\"step\":1,\"weights\":\"raw\",\"prompt_id\":0,\"mode\":\"greedy\"}\n{\"step\":2\n",
        )
        .expect("write");
        let err = format!("{:#}", read_verdict_flips(dir.path(), 0).expect_err("bad"));
        assert!(
            err.contains("generations.jsonl line 2: not a generation record"),
            "{err}"
        );
    }
}
