//! 95% intervals for oscillation indices and their ratios, by a block bootstrap over the
//! differenced residuals: consecutive evaluations are autocorrelated, so blocks of ⌈m^{1/3}⌉
//! consecutive differences (m of them) are drawn with replacement, not single ones (Künsch
//! 1989). The blocks wrap around the end of the series (the circular block bootstrap of Politis
//! & Romano 1992), so the first and last evaluations, where a run's transients sit, are drawn as
//! often as the rest; plain moving blocks under-draw them and bias the interval low.
//!
//! An index is std(Δr)/mean|x| ([`super::oscillation`]); a resample recomputes std(Δr) on the
//! resampled differences and keeps mean|x| (the level) as observed, so the interval is that of
//! the swing at the observed level. Series compared by a ratio (EMA against raw at the same
//! evaluations; a metric against val loss at the same evaluations) are resampled with the *same*
//! blocks, which keeps their pairing. The interval is the 2.5th–97.5th percentile of
//! [`RESAMPLES`] draws from a ChaCha8 stream seeded with [`SEED`], so a committed report
//! reproduces exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::oscillation::{differences, residual, MIN_SERIES_LEN};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;
/// The fixed seed of every resampling.
pub const SEED: u64 = 0x0B00_75EE;

/// A two-sided 95% percentile interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// Whether the interval contains `x` (e.g. a ratio interval straddling 1: not resolved).
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// Block length for `m` differences: ⌈m^{1/3}⌉, at least 1.
pub fn block_length(m: usize) -> usize {
    ((m as f64).cbrt().ceil() as usize).max(1)
}

/// Indices 0..m resampled as circular blocks of length `block` (a block starting near the end
/// continues from index 0).
fn resample(m: usize, block: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let block = block.min(m);
    let mut out = Vec::with_capacity(m + block);
    while out.len() < m {
        let start = rng.random_range(0..m);
        out.extend((start..start + block).map(|i| i % m));
    }
    out.truncate(m);
    out
}

fn population_std(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = v.clone().count() as f64;
    let mean = v.clone().sum::<f64>() / n;
    (v.map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// For aligned series (same evaluations, same length), each one's bootstrap draws of the
/// oscillation index, all from the same blocks. `None` when a series is shorter than
/// [`MIN_SERIES_LEN`], holds a non-finite value, or has mean|x| = 0.
pub fn index_draws(series: &[&[f64]], window: usize) -> Option<Vec<Vec<f64>>> {
    let n = series.first()?.len();
    if n < MIN_SERIES_LEN || series.iter().any(|s| s.len() != n) {
        return None;
    }
    let mut diffs = Vec::new();
    let mut levels = Vec::new();
    for s in series {
        if s.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let level = s.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        if level == 0.0 {
            return None;
        }
        diffs.push(differences(&residual(s, window)));
        levels.push(level);
    }
    let m = n - 1;
    let block = block_length(m);
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut draws = vec![Vec::with_capacity(RESAMPLES); series.len()];
    for _ in 0..RESAMPLES {
        let idx = resample(m, block, &mut rng);
        for (j, d) in diffs.iter().enumerate() {
            draws[j].push(population_std(idx.iter().map(|&i| d[i])) / levels[j]);
        }
    }
    Some(draws)
}

/// The 2.5th and 97.5th percentiles of the finite `draws` (linear interpolation between order
/// statistics, numpy's default); `None` if fewer than half the draws are finite.
pub fn percentile_interval(draws: &[f64]) -> Option<Interval> {
    let mut v: Vec<f64> = draws.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() * 2 < draws.len() || v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos - pos.floor());
        let next = v[(i + 1).min(v.len() - 1)];
        v[i] + frac * (next - v[i])
    };
    Some(Interval {
        lo: q(0.025),
        hi: q(0.975),
    })
}

/// The 95% interval of one series' oscillation index.
pub fn index_interval(series: &[f64], window: usize) -> Option<Interval> {
    let draws = index_draws(&[series], window)?;
    percentile_interval(&draws[0])
}

/// The 95% interval of index(num)/index(den) for aligned series resampled together (a draw
/// whose denominator is 0 counts as undefined).
pub fn ratio_interval(num: &[f64], den: &[f64], window: usize) -> Option<Interval> {
    let draws = index_draws(&[num, den], window)?;
    let ratios: Vec<f64> = draws[0]
        .iter()
        .zip(&draws[1])
        .map(|(a, b)| if *b > 0.0 { a / b } else { f64::NAN })
        .collect();
    percentile_interval(&ratios)
}

/// The 95% interval of the mean of `values` (a series, autocorrelated), by the same block
/// bootstrap; `None` for fewer than 2 values or a non-finite one.
pub fn mean_interval(values: &[f64]) -> Option<Interval> {
    let m = values.len();
    if m < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let block = block_length(m);
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let draws: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            resample(m, block, &mut rng)
                .iter()
                .map(|&i| values[i])
                .sum::<f64>()
                / m as f64
        })
        .collect();
    percentile_interval(&draws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::oscillation::oscillation_index;

    /// A deterministic noisy series: a trend plus i.i.d. noise of amplitude `amp`.
    fn noisy(n: usize, amp: f64, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| 10.0 + 0.01 * i as f64 + amp * (rng.random::<f64>() - 0.5))
            .collect()
    }

    #[test]
    fn the_interval_covers_the_estimate_and_narrows_with_more_evaluations() {
        let short = noisy(40, 1.0, 1);
        let long = noisy(400, 1.0, 1);
        for s in [&short, &long] {
            let est = oscillation_index(s, 5).unwrap();
            let ci = index_interval(s, 5).unwrap();
            assert!(ci.lo < est && est < ci.hi, "{ci:?} vs {est}");
        }
        let (a, b) = (
            index_interval(&short, 5).unwrap(),
            index_interval(&long, 5).unwrap(),
        );
        assert!(b.hi - b.lo < 0.6 * (a.hi - a.lo), "{a:?} {b:?}");
        // Reproducible: the seed is fixed.
        assert_eq!(index_interval(&short, 5), Some(a));
    }

    #[test]
    fn a_clear_ratio_excludes_one_and_an_equal_one_straddles_it() {
        let loud = noisy(80, 1.0, 2);
        let quiet = noisy(80, 0.2, 3);
        let r = ratio_interval(&quiet, &loud, 5).unwrap();
        assert!(r.hi < 1.0, "{r:?}");
        let twin = noisy(80, 1.0, 4);
        let same = ratio_interval(&twin, &loud, 5).unwrap();
        assert!(same.contains(1.0), "{same:?}");
        assert_eq!(index_interval(&[1.0, 2.0], 5), None);
        assert_eq!(index_interval(&[0.0; 10], 5), None);
    }

    #[test]
    fn percentiles_match_numpy() {
        // numpy.percentile(range(11), [2.5, 97.5]) = [0.25, 9.75]
        let v: Vec<f64> = (0..=10).map(f64::from).collect();
        let ci = percentile_interval(&v).unwrap();
        assert!((ci.lo - 0.25).abs() < 1e-12 && (ci.hi - 9.75).abs() < 1e-12);
    }
}
