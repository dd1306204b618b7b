//! Flip rates: how often a per-item outcome changes between consecutive evaluations. For BC an
//! item is a rollout start (reset seed) and the outcome whether its episode fell; for the LM, a
//! prompt and its greedy story's verdict from the story checker — either valid vs invalid, or the
//! verdict itself, so that a story that stays invalid for another reason also flips (issue 17).
//!
//! A flip rate separates swing from level. Outcomes drawn independently at every evaluation from
//! shares p_k flip at 1 − Σ_k p_k² (two independent draws differ); for a binary outcome with
//! p = P(true) that is 2p(1−p). The rate depends on the level through that, so it is reported
//! beside its chance value and as observed/expected: below 1, outcomes persist from one
//! evaluation to the next; near 1, each evaluation is a fresh draw.

use std::collections::{BTreeMap, BTreeSet};

use super::bootstrap::{pooled_mean_interval, Interval};

/// Flip statistics of one weights' outcomes (one run, or seeds pooled by
/// [`pooled_flip_stats`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FlipStats {
    /// Runs (seeds) pooled; 1 for a single run.
    pub seeds: usize,
    /// Evaluations (outcome vectors) seen, summed over the seeds.
    pub evaluations: usize,
    /// Items per evaluation (the smallest over the seeds).
    pub items: usize,
    /// p: the fraction of all outcomes that count as success (the `success` predicate of
    /// [`flip_stats`]: an episode that fell, a valid story); the seed mean when pooled.
    pub p: f64,
    /// The mean over consecutive pairs of evaluations of the fraction of items whose outcome
    /// changed; the seed mean when pooled.
    pub flip_rate: f64,
    /// Its 95% block-bootstrap interval over the pairs (stratified by seed when pooled).
    pub flip_rate_ci: Option<Interval>,
    /// 1 − Σ_k p_k² over the outcomes' shares p_k (2p(1−p) for a binary outcome): the flip rate
    /// of independent evaluations with the same shares; the seed mean when pooled.
    pub expected: f64,
    /// Each consecutive pair's flip fraction, in step order (empty when pooled).
    pub per_pair: Vec<f64>,
}

impl FlipStats {
    /// Observed over expected (`None` when the expected rate is 0: a single outcome throughout,
    /// nothing can flip by chance).
    pub fn ratio(&self) -> Option<f64> {
        (self.expected > 0.0).then(|| self.flip_rate / self.expected)
    }

    /// The flip rate's interval over the expected rate (taken as known).
    pub fn ratio_ci(&self) -> Option<Interval> {
        let ci = self.flip_rate_ci?;
        (self.expected > 0.0).then(|| Interval {
            lo: ci.lo / self.expected,
            hi: ci.hi / self.expected,
        })
    }
}

/// Flip statistics of `outcomes[evaluation][item]` (every evaluation over the same items, in
/// step order), p counting the outcomes for which `success` holds; `None` for fewer than 2
/// evaluations, no items, or ragged rows.
pub fn flip_stats<T: Ord>(outcomes: &[Vec<T>], success: impl Fn(&T) -> bool) -> Option<FlipStats> {
    let items = outcomes.first()?.len();
    if outcomes.len() < 2 || items == 0 || outcomes.iter().any(|o| o.len() != items) {
        return None;
    }
    let per_pair: Vec<f64> = outcomes
        .windows(2)
        .map(|w| w[0].iter().zip(&w[1]).filter(|(a, b)| a != b).count() as f64 / items as f64)
        .collect();
    let total = (outcomes.len() * items) as f64;
    let mut counts: BTreeMap<&T, usize> = BTreeMap::new();
    for o in outcomes.iter().flatten() {
        *counts.entry(o).or_default() += 1;
    }
    let p = counts
        .iter()
        .filter(|(o, _)| success(o))
        .map(|(_, c)| *c)
        .sum::<usize>() as f64
        / total;
    let same = counts
        .values()
        .map(|&c| (c as f64 / total).powi(2))
        .sum::<f64>();
    Some(FlipStats {
        seeds: 1,
        evaluations: outcomes.len(),
        items,
        p,
        flip_rate: per_pair.iter().sum::<f64>() / per_pair.len() as f64,
        flip_rate_ci: pooled_mean_interval(&[&per_pair]),
        // A single outcome throughout: exactly 0, not a rounding residue.
        expected: if counts.len() > 1 { 1.0 - same } else { 0.0 },
        per_pair,
    })
}

/// [`flip_stats`] of outcomes keyed `by_step[step][item]`: the evaluations in step order, over
/// the items present at every one of them (an item missing from some evaluation is left out
/// rather than counted as a flip).
pub fn flip_stats_by_item<K: Ord + Clone, T: Ord + Clone>(
    by_step: &BTreeMap<u64, BTreeMap<K, T>>,
    success: impl Fn(&T) -> bool,
) -> Option<FlipStats> {
    let mut common: Option<BTreeSet<&K>> = None;
    for row in by_step.values() {
        let here: BTreeSet<&K> = row.keys().collect();
        common = Some(match common {
            None => here,
            Some(prev) => prev.intersection(&here).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    let outcomes: Vec<Vec<T>> = by_step
        .values()
        .map(|row| common.iter().map(|k| row[*k].clone()).collect())
        .collect();
    flip_stats(&outcomes, success)
}

/// Seeds pooled: flip rate, p and expected rate are the means over the seeds, observed/expected
/// the ratio of those means, and the flip rate's interval the stratified block bootstrap of
/// [`crate::eval::bootstrap::pooled_mean_interval`] over each seed's per-pair fractions.
/// `None` without members or for a member that is itself pooled.
pub fn pooled_flip_stats(members: &[&FlipStats]) -> Option<FlipStats> {
    if members.is_empty() || members.iter().any(|m| m.per_pair.is_empty()) {
        return None;
    }
    let mean =
        |f: fn(&FlipStats) -> f64| members.iter().map(|m| f(m)).sum::<f64>() / members.len() as f64;
    let pairs: Vec<&[f64]> = members.iter().map(|m| m.per_pair.as_slice()).collect();
    Some(FlipStats {
        seeds: members.len(),
        evaluations: members.iter().map(|m| m.evaluations).sum(),
        items: members.iter().map(|m| m.items).min()?,
        p: mean(|m| m.p),
        flip_rate: mean(|m| m.flip_rate),
        flip_rate_ci: pooled_mean_interval(&pairs),
        expected: mean(|m| m.expected),
        per_pair: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_of_known_sequences() {
        // Item 0 alternates (flips at every pair), item 1 never changes: flip rate 1/2. Of the
        // 4 × 2 outcomes 6 are true (item 0 twice, item 1 four times): p = 3/4.
        let o = vec![
            vec![true, true],
            vec![false, true],
            vec![true, true],
            vec![false, true],
        ];
        let f = flip_stats(&o, |b| *b).unwrap();
        assert_eq!(f.flip_rate, 0.5);
        assert_eq!(f.p, 6.0 / 8.0);
        assert!((f.expected - 2.0 * 0.75 * 0.25).abs() < 1e-12);
        assert!((f.ratio().unwrap() - 0.5 / 0.375).abs() < 1e-12);
        assert_eq!(f.per_pair, vec![0.5, 0.5, 0.5]);
        // Constant outcomes: no flips, nothing expected.
        let c = flip_stats(&[vec![true; 3], vec![true; 3]], |b| *b).unwrap();
        assert_eq!((c.flip_rate, c.expected, c.ratio()), (0.0, 0.0, None));
        assert_eq!(flip_stats(&[vec![true]], |b| *b), None);
        assert_eq!(flip_stats(&[vec![true], vec![]], |b| *b), None);
    }

    #[test]
    fn categorical_outcomes_flip_on_any_change() {
        // Verdicts of 2 prompts over 3 evaluations. Prompt 0: valid → a → b (2 flips; only the
        // first crosses valid/invalid); prompt 1: a → a → valid (1 flip, crossing).
        let v = |s: &str| s.to_string();
        let o = vec![
            vec![v("valid"), v("a")],
            vec![v("a"), v("a")],
            vec![v("b"), v("valid")],
        ];
        let f = flip_stats(&o, |s| s == "valid").unwrap();
        // Pairs: (1 + 0)/2, (1 + 1)/2.
        assert_eq!(f.per_pair, vec![0.5, 1.0]);
        assert_eq!(f.flip_rate, 0.75);
        // Shares: valid 2/6, a 3/6, b 1/6: 1 − (4 + 9 + 1)/36 = 22/36.
        assert_eq!(f.p, 2.0 / 6.0);
        assert!((f.expected - 22.0 / 36.0).abs() < 1e-12);
        let valid: Vec<Vec<bool>> = o
            .iter()
            .map(|row| row.iter().map(|s| s == "valid").collect())
            .collect();
        let b = flip_stats(&valid, |b| *b).unwrap();
        assert_eq!(b.per_pair, vec![0.5, 0.5]);
        assert!((b.expected - 2.0 * (1.0 / 3.0) * (2.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn items_missing_somewhere_are_left_out_and_seeds_pool_by_their_mean() {
        let mut by_step: BTreeMap<u64, BTreeMap<u32, bool>> = BTreeMap::new();
        by_step.insert(10, [(0, true), (1, false), (2, true)].into());
        by_step.insert(20, [(0, false), (1, false)].into());
        by_step.insert(30, [(0, true), (1, true), (2, false)].into());
        let f = flip_stats_by_item(&by_step, |b| *b).unwrap();
        assert_eq!((f.evaluations, f.items), (3, 2));
        assert_eq!(f.per_pair, vec![0.5, 1.0]);
        let g = flip_stats(
            &[vec![true, true], vec![true, false], vec![true, true]],
            |b| *b,
        )
        .unwrap();
        let pooled = pooled_flip_stats(&[&f, &g]).unwrap();
        assert_eq!(pooled.seeds, 2);
        assert_eq!(pooled.evaluations, 6);
        assert_eq!(pooled.flip_rate, (0.75 + 0.5) / 2.0);
        assert_eq!(pooled.expected, (f.expected + g.expected) / 2.0);
        assert!(pooled.per_pair.is_empty());
        assert_eq!(pooled_flip_stats(&[&pooled]), None);
        assert_eq!(pooled_flip_stats(&[]), None);
    }
}
