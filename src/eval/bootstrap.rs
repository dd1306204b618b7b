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
//!
//! The same draws give the interval of `resid_sd` ([`super::swing`], std(Δr) in the metric's
//! units): it is the index's numerator.
//!
//! **Seeds pooled.** Runs that differ only in their training seed are independent replicates. A
//! pooled statistic is the mean over the seeds of each seed's statistic, and its interval comes
//! from a stratified bootstrap: each draw resamples every seed's own differences (its own block
//! length, its own ChaCha8 stream: seed k of a pool uses stream k, so the first seed's draws are
//! those of its single-run interval) and averages the seeds' resampled statistics. A pooled ratio
//! (EMA/raw; metric/val loss) is the ratio of the two pooled means, draw by draw, so it matches
//! the ratio of the pooled columns a report prints. One seed is the single-run case exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::oscillation::{differences, residual, MIN_SERIES_LEN};
use super::swing::population_std;

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;
/// Fewest differences (evaluations − 1) a series needs for an interval. Fewer blocks than this
/// give so few distinct resamples that a "95% interval" means little (4 differences in blocks
/// of 2: at most 16), and a verdict decided on one would be decided on nothing; the report then
/// prints the statistic without an interval and leaves the comparison not resolved.
pub const MIN_DIFFERENCES: usize = 9;
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

/// The resampling stream of the `k`-th seed of a pool (stream 0: a single run's).
fn stream(k: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    rng.set_stream(k as u64);
    rng
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

/// Which swing statistic a draw is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swing {
    /// The oscillation index, std(Δr) / mean|x| (scale-free).
    Index,
    /// resid_sd, std(Δr) (the metric's units).
    ResidSd,
}

/// Bootstrap draws of the swing of several aligned series, pooled over seeds by their mean:
/// `[series][draw]`, [`RESAMPLES`] draws each.
#[derive(Clone, Debug)]
pub struct SwingDraws {
    /// Draws of resid_sd = std(Δr), in each series' own units.
    pub resid_sd: Vec<Vec<f64>>,
    /// `None` when some seed's series has mean|x| = 0 (its index is undefined).
    pub index: Option<Vec<Vec<f64>>>,
}

impl SwingDraws {
    fn draws(&self, swing: Swing) -> Option<&Vec<Vec<f64>>> {
        match swing {
            Swing::Index => self.index.as_ref(),
            Swing::ResidSd => Some(&self.resid_sd),
        }
    }

    /// The 95% interval of series `j`'s (seed-mean) statistic.
    pub fn interval(&self, swing: Swing, j: usize) -> Option<Interval> {
        percentile_interval(self.draws(swing)?.get(j)?)
    }

    /// The 95% interval of statistic(`num`) / statistic(`den`), draw by draw (a draw whose
    /// denominator is 0 counts as undefined).
    pub fn ratio_interval(&self, swing: Swing, num: usize, den: usize) -> Option<Interval> {
        let d = self.draws(swing)?;
        let ratios: Vec<f64> = d
            .get(num)?
            .iter()
            .zip(d.get(den)?)
            .map(|(a, b)| if *b > 0.0 { a / b } else { f64::NAN })
            .collect();
        percentile_interval(&ratios)
    }
}

/// `seeds[k]` holds seed k's aligned series (same evaluations, same length within a seed; the
/// same number of series, in the same roles, for every seed). Every seed's series are resampled
/// with the same blocks, drawn from seed k's own stream. `None` when there is no seed, the
/// seeds hold different numbers of series, or a series has fewer than [`MIN_DIFFERENCES`] + 1
/// points,
/// misaligned within its seed, or holds a non-finite value.
pub fn swing_draws(seeds: &[Vec<&[f64]>], window: usize) -> Option<SwingDraws> {
    let count = seeds.first()?.len();
    if count == 0 || seeds.iter().any(|s| s.len() != count) {
        return None;
    }
    let share = 1.0 / seeds.len() as f64;
    let mut resid_sd = vec![vec![0.0; RESAMPLES]; count];
    let mut index = Some(vec![vec![0.0; RESAMPLES]; count]);
    for (k, series) in seeds.iter().enumerate() {
        let n = series[0].len();
        if n < MIN_SERIES_LEN
            || n - 1 < MIN_DIFFERENCES
            || series
                .iter()
                .any(|s| s.len() != n || s.iter().any(|x| !x.is_finite()))
        {
            return None;
        }
        let diffs: Vec<Vec<f64>> = series
            .iter()
            .map(|s| differences(&residual(s, window)))
            .collect();
        let levels: Vec<f64> = series
            .iter()
            .map(|s| s.iter().map(|x| x.abs()).sum::<f64>() / n as f64)
            .collect();
        if levels.contains(&0.0) {
            index = None;
        }
        let m = n - 1;
        let block = block_length(m);
        let mut rng = stream(k);
        for b in 0..RESAMPLES {
            let idx = resample(m, block, &mut rng);
            for (j, d) in diffs.iter().enumerate() {
                let sd = population_std(idx.iter().map(|&i| d[i]));
                resid_sd[j][b] += sd * share;
                if let Some(index) = index.as_mut() {
                    index[j][b] += sd / levels[j] * share;
                }
            }
        }
    }
    Some(SwingDraws { resid_sd, index })
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
    swing_draws(&[vec![series]], window)?.interval(Swing::Index, 0)
}

/// The 95% interval of index(num)/index(den) for aligned series resampled together.
pub fn ratio_interval(num: &[f64], den: &[f64], window: usize) -> Option<Interval> {
    swing_draws(&[vec![num, den]], window)?.ratio_interval(Swing::Index, 0, 1)
}

/// The 95% interval of the mean over seeds of each seed's mean of `values` (a series,
/// autocorrelated; seed k resampled in blocks from stream k); one seed: the interval of its
/// mean. `None` without seeds, or for a seed with fewer than [`MIN_DIFFERENCES`] values (a flip
/// rate's values are per pair of evaluations) or a non-finite one.
pub fn pooled_mean_interval(seeds: &[&[f64]]) -> Option<Interval> {
    if seeds.is_empty()
        || seeds
            .iter()
            .any(|v| v.len() < 2 || v.len() < MIN_DIFFERENCES || v.iter().any(|x| !x.is_finite()))
    {
        return None;
    }
    let share = 1.0 / seeds.len() as f64;
    let mut draws = vec![0.0; RESAMPLES];
    for (k, values) in seeds.iter().enumerate() {
        let m = values.len();
        let block = block_length(m);
        let mut rng = stream(k);
        for draw in draws.iter_mut() {
            let mean = resample(m, block, &mut rng)
                .iter()
                .map(|&i| values[i])
                .sum::<f64>()
                / m as f64;
            *draw += mean * share;
        }
    }
    percentile_interval(&draws)
}

/// The 95% interval of the mean of `values` (a series, autocorrelated), by the same block
/// bootstrap; `None` for fewer than 2 values or a non-finite one.
pub fn mean_interval(values: &[f64]) -> Option<Interval> {
    pooled_mean_interval(&[values])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fewer than MIN_DIFFERENCES differences get no interval (a verdict on one would rest on
    /// a handful of distinct resamples); one more point gets one.
    #[test]
    fn short_series_get_no_interval() {
        let zigzag = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| 1.0 + 0.01 * i as f64 + if i % 2 == 0 { 0.1 } else { -0.1 })
                .collect()
        };
        let short = zigzag(MIN_DIFFERENCES);
        assert!(index_interval(&short, 3).is_none());
        assert!(mean_interval(&short[..MIN_DIFFERENCES - 1]).is_none());
        let enough = zigzag(MIN_DIFFERENCES + 1);
        assert!(index_interval(&enough, 3).is_some());
        assert!(mean_interval(&enough[..MIN_DIFFERENCES]).is_some());
    }
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
    fn pooled_seeds_average_and_resample_independently() {
        use crate::eval::swing::resid_sd;
        let (a, b) = (noisy(60, 1.0, 5), noisy(60, 1.0, 6));
        let single = |s: &[f64]| swing_draws(&[vec![s]], 5).unwrap();
        // One seed is the single-run interval exactly.
        assert_eq!(single(&a).interval(Swing::Index, 0), index_interval(&a, 5));
        let pooled = swing_draws(&[vec![&a], vec![&b]], 5).unwrap();
        // Seed 1 resamples from its own stream: twin seeds are not resampled in lockstep (their
        // pooled draws would then be the single run's).
        let (da, db) = (single(&a), single(&b));
        let twin = swing_draws(&[vec![&a], vec![&a]], 5).unwrap();
        assert_ne!(twin.resid_sd[0], da.resid_sd[0]);
        // The pooled interval covers the mean of the seeds' estimates, and its width is that of
        // a mean of two independent draws: √(w_a² + w_b²)/2 (twins: w_a/√2).
        let mean = (resid_sd(&a, 5).unwrap() + resid_sd(&b, 5).unwrap()) / 2.0;
        let ci = pooled.interval(Swing::ResidSd, 0).unwrap();
        assert!(ci.contains(mean), "{ci:?} vs {mean}");
        let width = |d: &SwingDraws| {
            let c = d.interval(Swing::ResidSd, 0).unwrap();
            c.hi - c.lo
        };
        let (wa, wb) = (width(&da), width(&db));
        let expected = (wa * wa + wb * wb).sqrt() / 2.0;
        assert!(
            (width(&pooled) / expected - 1.0).abs() < 0.2,
            "{wa} {wb} {ci:?}"
        );
        let twin_ratio = width(&twin) / (wa / 2f64.sqrt());
        assert!((twin_ratio - 1.0).abs() < 0.2, "{twin_ratio}");
        // Means pool the same way.
        let m = pooled_mean_interval(&[&a, &b]).unwrap();
        let w = |c: Interval| c.hi - c.lo;
        assert!(w(m) < w(mean_interval(&a).unwrap()).max(w(mean_interval(&b).unwrap())));
        assert_eq!(pooled_mean_interval(&[&a]), mean_interval(&a));
        assert_eq!(swing_draws(&[vec![&a], vec![&a, &b]], 5).map(|_| ()), None);
    }

    #[test]
    fn percentiles_match_numpy() {
        // numpy.percentile(range(11), [2.5, 97.5]) = [0.25, 9.75]
        let v: Vec<f64> = (0..=10).map(f64::from).collect();
        let ci = percentile_interval(&v).unwrap();
        assert!((ci.lo - 0.25).abs() < 1e-12 && (ci.hi - 9.75).abs() < 1e-12);
    }
}
