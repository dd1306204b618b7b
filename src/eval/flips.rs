//! Flip rates: how often a per-item binary outcome changes between consecutive evaluations. For
//! BC an item is a rollout start (reset seed) and the outcome whether its episode fell; for the
//! LM, a prompt and whether its greedy story is valid. A flip rate separates swing from level:
//! an outcome that is p-likely and independent between evaluations flips at 2p(1−p), so the
//! rate is reported beside that and as observed/expected.

use super::bootstrap::{mean_interval, Interval};

/// Flip statistics of one weights' outcomes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlipStats {
    /// Evaluations (outcome vectors) seen.
    pub evaluations: usize,
    /// Items per evaluation.
    pub items: usize,
    /// p: the fraction of all outcomes that are `true`.
    pub rate_true: f64,
    /// The mean over consecutive pairs of evaluations of the fraction of items that flipped.
    pub flip_rate: f64,
    /// Its 95% block-bootstrap interval over the pairs.
    pub flip_rate_ci: Option<Interval>,
    /// 2p(1−p), the flip rate of independent evaluations with the same p.
    pub expected: f64,
}

impl FlipStats {
    /// Observed over expected (`None` when p is 0 or 1: nothing can flip by chance).
    pub fn ratio(&self) -> Option<f64> {
        (self.expected > 0.0).then(|| self.flip_rate / self.expected)
    }

    pub fn ratio_ci(&self) -> Option<Interval> {
        let ci = self.flip_rate_ci?;
        (self.expected > 0.0).then(|| Interval {
            lo: ci.lo / self.expected,
            hi: ci.hi / self.expected,
        })
    }
}

/// Flip statistics of `outcomes[evaluation][item]` (every evaluation over the same items, in
/// step order); `None` for fewer than 2 evaluations, no items, or ragged rows.
pub fn flip_stats(outcomes: &[Vec<bool>]) -> Option<FlipStats> {
    let items = outcomes.first()?.len();
    if outcomes.len() < 2 || items == 0 || outcomes.iter().any(|o| o.len() != items) {
        return None;
    }
    let per_pair: Vec<f64> = outcomes
        .windows(2)
        .map(|w| w[0].iter().zip(&w[1]).filter(|(a, b)| a != b).count() as f64 / items as f64)
        .collect();
    let trues = outcomes.iter().flatten().filter(|&&b| b).count();
    let p = trues as f64 / (outcomes.len() * items) as f64;
    Some(FlipStats {
        evaluations: outcomes.len(),
        items,
        rate_true: p,
        flip_rate: per_pair.iter().sum::<f64>() / per_pair.len() as f64,
        flip_rate_ci: mean_interval(&per_pair),
        expected: 2.0 * p * (1.0 - p),
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
        let f = flip_stats(&o).unwrap();
        assert_eq!(f.flip_rate, 0.5);
        assert_eq!(f.rate_true, 6.0 / 8.0);
        assert!((f.expected - 2.0 * 0.75 * 0.25).abs() < 1e-12);
        assert!((f.ratio().unwrap() - 0.5 / 0.375).abs() < 1e-12);
        // Constant outcomes: no flips, nothing expected.
        let c = flip_stats(&[vec![true; 3], vec![true; 3]]).unwrap();
        assert_eq!((c.flip_rate, c.expected, c.ratio()), (0.0, 0.0, None));
        assert_eq!(flip_stats(&[vec![true]]), None);
        assert_eq!(flip_stats(&[vec![true], vec![]]), None);
    }
}
