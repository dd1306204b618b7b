//! Oscillation statistics of a metric's series over evaluations (issue 3, fixed definitions).
//!
//! For a series x₀..x_{n−1} (one value per evaluation, in step order):
//!
//! - **trend**: a centred moving average of width `w` that shrinks *symmetrically* at the ends.
//!   With half-width `h = w / 2` (integer division), the trend at index `i` is the mean of
//!   `x[i−k ..= i+k]` with `k = min(h, i, n−1−i)`. So the first and last points are their own
//!   trend (their residual is 0), and the window is always centred, which keeps a linear trend
//!   exact everywhere. An even `w` therefore behaves as `w + 1`; `w ≤ 1` means no smoothing.
//! - **residual** r = x − trend.
//! - **oscillation index** = std(Δr) / mean|x|, where Δr is the n − 1 first differences of the
//!   residual and std is the *population* standard deviation (divide by the count, n − 1).
//!   Dividing by mean|x| makes it scale-free, so metrics with different units compare.
//! - **lag-1 autocorrelation of Δx**: the usual sample-ACF estimator on d = Δx,
//!   Σ_{t}(d_t − d̄)(d_{t+1} − d̄) / Σ_t (d_t − d̄)² (one mean, one denominator over all of d,
//!   as `statsmodels.tsa.acf` computes it). For i.i.d. noise this tends to −0.5.
//! - **Spearman correlation** between Δ(val loss) and Δ(metric): Pearson correlation of the ranks,
//!   ties given their average rank.
//!
//! Every statistic returns `None` instead of NaN or ±∞: for series shorter than
//! [`MIN_SERIES_LEN`] points (fewer than 2 differences say nothing about oscillation), for any
//! non-finite input, and for a zero denominator (mean|x| = 0, constant differences, all-tied
//! ranks). A caller logs a `None` as an absent key, never as 0.

/// The trend window the issue fixes as default (`report.trend_window`).
pub const DEFAULT_TREND_WINDOW: usize = 5;

/// Shortest series any statistic here is computed for.
pub const MIN_SERIES_LEN: usize = 3;

/// Fewest (Δval loss, Δmetric) pairs a Spearman correlation is computed for: with two pairs it
/// is always ±1 and says nothing.
pub const MIN_SPEARMAN_PAIRS: usize = 3;

/// All statistics of one metric's series, as the report tabulates them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OscillationStats {
    /// std(Δr) / mean|x|.
    pub index: Option<f64>,
    /// Lag-1 autocorrelation of Δx.
    pub lag1_autocorrelation: Option<f64>,
    /// Spearman correlation of Δ(val loss) with Δ(metric); `None` without a val-loss series.
    pub spearman_vs_val_loss: Option<f64>,
}

/// Every statistic for `metric`, paired with `val_loss` (same evaluations, same order) when given.
pub fn oscillation_stats(
    metric: &[f64],
    val_loss: Option<&[f64]>,
    trend_window: usize,
) -> OscillationStats {
    OscillationStats {
        index: oscillation_index(metric, trend_window),
        lag1_autocorrelation: lag1_autocorrelation_of_differences(metric),
        spearman_vs_val_loss: val_loss.and_then(|v| spearman_of_differences(v, metric)),
    }
}

/// The centred moving average of width `window`, shrinking symmetrically at the ends (see the
/// module docs). Same length as `x`.
pub fn trend(x: &[f64], window: usize) -> Vec<f64> {
    let n = x.len();
    let half = window / 2;
    (0..n)
        .map(|i| {
            let k = half.min(i).min(n - 1 - i);
            let span = &x[i - k..=i + k];
            span.iter().sum::<f64>() / span.len() as f64
        })
        .collect()
}

/// x − trend(x, window).
pub fn residual(x: &[f64], window: usize) -> Vec<f64> {
    x.iter()
        .zip(trend(x, window))
        .map(|(value, t)| value - t)
        .collect()
}

/// First differences x[i+1] − x[i] (one fewer than `x`; empty for fewer than 2 points).
pub fn differences(x: &[f64]) -> Vec<f64> {
    x.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

/// std(Δr) / mean|x| with the population std; see the module docs.
pub fn oscillation_index(x: &[f64], window: usize) -> Option<f64> {
    if !usable(x) {
        return None;
    }
    let mean_abs = mean(&x.iter().map(|v| v.abs()).collect::<Vec<_>>());
    if mean_abs == 0.0 {
        return None;
    }
    let spread = population_std(&differences(&residual(x, window)));
    finite(spread / mean_abs)
}

/// Lag-1 autocorrelation of Δx (sample-ACF estimator; see the module docs).
pub fn lag1_autocorrelation_of_differences(x: &[f64]) -> Option<f64> {
    if !usable(x) {
        return None;
    }
    lag1_autocorrelation(&differences(x))
}

/// Lag-1 autocorrelation of `d` itself: Σ(d_t − d̄)(d_{t+1} − d̄) / Σ(d_t − d̄)².
/// `None` for fewer than 2 values, non-finite values, or zero variance.
pub fn lag1_autocorrelation(d: &[f64]) -> Option<f64> {
    if d.len() < 2 || !d.iter().all(|v| v.is_finite()) {
        return None;
    }
    let m = mean(d);
    let denominator: f64 = d.iter().map(|v| (v - m) * (v - m)).sum();
    if denominator == 0.0 {
        return None;
    }
    let numerator: f64 = d.windows(2).map(|p| (p[0] - m) * (p[1] - m)).sum();
    finite(numerator / denominator)
}

/// Spearman correlation between Δ(val loss) and Δ(metric) over consecutive evaluations.
/// `val_loss` and `metric` hold one value per evaluation, in the same order; `None` if their
/// lengths differ (a pairing bug upstream must not produce a number).
pub fn spearman_of_differences(val_loss: &[f64], metric: &[f64]) -> Option<f64> {
    if val_loss.len() != metric.len() || !usable(val_loss) || !usable(metric) {
        return None;
    }
    spearman(&differences(val_loss), &differences(metric))
}

/// Spearman rank correlation of paired samples: Pearson correlation of their ranks, ties given
/// the average of the ranks they span. `None` for unequal lengths, fewer than
/// [`MIN_SPEARMAN_PAIRS`] pairs, non-finite values, or a side whose values are all equal.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < MIN_SPEARMAN_PAIRS {
        return None;
    }
    if !a.iter().chain(b).all(|v| v.is_finite()) {
        return None;
    }
    pearson(&average_ranks(a), &average_ranks(b))
}

/// Ranks 1..=n of `values`, ties sharing the mean of the ranks they occupy.
/// Values must be finite (callers check); equality is exact.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean is the tie's rank.
        let tied_rank = (start + 1 + end) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = tied_rank;
        }
        start = end;
    }
    ranks
}

/// Pearson correlation; `None` when either side has zero variance.
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ma, mb) = (mean(a), mean(b));
    let mut cov = 0.0;
    let mut var_a = 0.0;
    let mut var_b = 0.0;
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        var_a += (x - ma) * (x - ma);
        var_b += (y - mb) * (y - mb);
    }
    if var_a == 0.0 || var_b == 0.0 {
        return None;
    }
    // Rounding can push |r| a hair past 1 for perfectly (anti)monotone data.
    finite((cov / (var_a * var_b).sqrt()).clamp(-1.0, 1.0))
}

/// Long enough and all finite.
fn usable(x: &[f64]) -> bool {
    x.len() >= MIN_SERIES_LEN && x.iter().all(|v| v.is_finite())
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Population standard deviation (divide by the count).
fn population_std(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / x.len() as f64).sqrt()
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn differences_of_iid_noise_have_lag1_autocorrelation_minus_half() {
        // d_t = e_{t+1} − e_t shares e_{t+1} with d_{t+1} with opposite sign:
        // cov(d_t, d_{t+1}) = −σ², var(d_t) = 2σ², so the autocorrelation is −1/2.
        let mut rng = ChaCha8Rng::seed_from_u64(20240);
        let noise: Vec<f64> = (0..20_000).map(|_| rng.random::<f64>() - 0.5).collect();
        let r = lag1_autocorrelation_of_differences(&noise).expect("defined");
        assert!(close(r, -0.5, 0.03), "lag-1 autocorrelation {r}");
        // A random walk's differences are the noise itself: autocorrelation near 0.
        let walk: Vec<f64> = noise
            .iter()
            .scan(0.0, |s, e| {
                *s += e;
                Some(*s)
            })
            .collect();
        let r = lag1_autocorrelation_of_differences(&walk).expect("defined");
        assert!(close(r, 0.0, 0.03), "random walk lag-1 autocorrelation {r}");
    }

    #[test]
    fn lag1_autocorrelation_by_hand() {
        // d = [1, −1, 1, −1]: mean 0, Σd² = 4, Σ d_t d_{t+1} = −3 → −3/4.
        let r = lag1_autocorrelation(&[1.0, -1.0, 1.0, -1.0]).expect("defined");
        assert!(close(r, -0.75, 1e-15), "{r}");
        // x = [0, 1, 3, 6]: d = [1, 2, 3], mean 2, Σ(d−2)² = 2, Σ = (−1)(0) + (0)(1) = 0.
        let r = lag1_autocorrelation_of_differences(&[0.0, 1.0, 3.0, 6.0]).expect("defined");
        assert!(close(r, 0.0, 1e-15), "{r}");
    }

    #[test]
    fn pure_linear_trend_has_index_zero() {
        // A centred window over a line averages to the line's value at the centre, so the
        // residual is 0 everywhere, ends included (the shrink is symmetric).
        let x: Vec<f64> = (0..50).map(|t| 3.0 + 0.25 * t as f64).collect();
        let index = oscillation_index(&x, DEFAULT_TREND_WINDOW).expect("defined");
        assert!(index.abs() <= 1e-12, "index {index}");
        // A falling line, and other windows, too.
        let y: Vec<f64> = (0..31).map(|t| 7.0 - 0.1 * t as f64).collect();
        for w in [1, 3, 5, 7, 9] {
            let index = oscillation_index(&y, w).expect("defined");
            assert!(index.abs() <= 1e-12, "window {w}: index {index}");
        }
    }

    #[test]
    fn alternating_sinusoid_on_a_trend_has_the_hand_computed_index() {
        // x_t = 10 + 0.1 t + A s_t, s_t = (−1)^t, t = 0..n−1, n = 40, A = 0.5: a sinusoid at
        // the Nyquist frequency on a linear trend. The line passes through the centred window
        // exactly, so only A s_t leaves a residual. The window mean of s around t is:
        //   half-width 2 (2 ≤ t ≤ n−3):  s_t (1 − 1 + 1 − 1 + 1)/5 = s_t/5  → r_t = (4A/5) s_t
        //   half-width 1 (t = 1, n−2):   s_t (−1 + 1 − 1)/3 = −s_t/3        → r_t = (4A/3) s_t
        //   half-width 0 (t = 0, n−1):   s_t                                → r_t = 0
        // Differences Δ_t = r_t − r_{t−1}, t = 1..n−1 (n − 1 = 39 of them):
        //   Δ_1 = r_1 − 0 = −4A/3;   Δ_2 = 4A/5 + 4A/3 = 32A/15;
        //   Δ_t = (4A/5)(s_t − s_{t−1}) = ±8A/5 for 3 ≤ t ≤ n−3 (n − 5 = 35 of them);
        //   Δ_{n−2} = (4A/3)s_{n−2} − (4A/5)s_{n−3} = 32A/15 (s_38 = +1);  Δ_{n−1} = −4A/3.
        // Their mean is (r_{n−1} − r_0)/(n−1) = 0, so the population variance is the mean square:
        //   [2·(4/3)² + 2·(32/15)² + 35·(8/5)²] A² / 39 = (800 + 2048 + 20160)/225 · A²/39
        //   = 23008 A² / 8775.
        // mean|x| = 10 + 0.1·(n−1)/2 = 11.95 (every x_t > 0 and Σ s_t = 0 for even n).
        // Index = A·√(23008/8775) / 11.95 = 0.5 · 1.6192573… / 11.95 ≈ 0.0677514.
        let (n, a) = (40usize, 0.5);
        let x: Vec<f64> = (0..n)
            .map(|t| 10.0 + 0.1 * t as f64 + a * if t % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let r = residual(&x, 5);
        assert!(r[0].abs() < 1e-12 && r[n - 1].abs() < 1e-12);
        assert!(close(r[1], -4.0 * a / 3.0, 1e-12), "r_1 = {}", r[1]);
        assert!(
            close(r[n - 2], 4.0 * a / 3.0, 1e-12),
            "r_n-2 = {}",
            r[n - 2]
        );
        for (t, rt) in r.iter().enumerate().take(n - 2).skip(2) {
            let expected = 0.8 * a * if t % 2 == 0 { 1.0 } else { -1.0 };
            assert!(close(*rt, expected, 1e-12), "r_{t} = {rt}");
        }
        let expected = a * (23008.0f64 / 8775.0).sqrt() / 11.95;
        let index = oscillation_index(&x, 5).expect("defined");
        assert!(
            close(index, expected, 1e-12),
            "index {index}, expected {expected}"
        );
        assert!(close(index, 0.0677514, 1e-7), "index {index}");
        // The index scales with the amplitude and not with the trend's slope.
        let steeper: Vec<f64> = (0..n).map(|t| x[t] + 0.3 * t as f64).collect();
        let mean_abs = 10.0 + 0.4 * (n - 1) as f64 / 2.0;
        let expected = a * (23008.0f64 / 8775.0).sqrt() / mean_abs;
        let index = oscillation_index(&steeper, 5).expect("defined");
        assert!(
            close(index, expected, 1e-12),
            "index {index}, expected {expected}"
        );
    }

    #[test]
    fn trend_shrinks_symmetrically_at_the_ends() {
        let x = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
        let t = trend(&x, 5);
        let expected = [
            1.0,
            (1.0 + 2.0 + 4.0) / 3.0,
            (1.0 + 2.0 + 4.0 + 8.0 + 16.0) / 5.0,
            (2.0 + 4.0 + 8.0 + 16.0 + 32.0) / 5.0,
            (8.0 + 16.0 + 32.0) / 3.0,
            32.0,
        ];
        for (got, want) in t.iter().zip(expected) {
            assert!(close(*got, want, 1e-12), "{t:?}");
        }
        // Width 1 (and 0) is no smoothing; width 4 acts as 5.
        assert_eq!(trend(&x, 1), x.to_vec());
        assert_eq!(trend(&x, 0), x.to_vec());
        assert_eq!(trend(&x, 4), trend(&x, 5));
    }

    #[test]
    fn spearman_monotone_reversed_and_ties() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        // Any increasing transform gives +1, any decreasing one −1.
        let up = [0.1, 5.0, 7.0, 100.0, 1000.0];
        let down = [9.0, 3.0, 0.0, -2.0, -50.0];
        assert!(close(spearman(&a, &up).expect("defined"), 1.0, 1e-15));
        assert!(close(spearman(&a, &down).expect("defined"), -1.0, 1e-15));
        // Ties: a = [1, 2, 2, 3] → ranks [1, 2.5, 2.5, 4]; b = [10, 30, 20, 20] → [1, 4, 2.5, 2.5].
        // Centred (mean 2.5): a' = [−1.5, 0, 0, 1.5], b' = [−1.5, 1.5, 0, 0].
        // Σa'b' = 2.25; Σa'² = 4.5; Σb'² = 4.5 → ρ = 2.25 / 4.5 = 0.5.
        assert_eq!(
            average_ranks(&[1.0, 2.0, 2.0, 3.0]),
            vec![1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(
            average_ranks(&[10.0, 30.0, 20.0, 20.0]),
            vec![1.0, 4.0, 2.5, 2.5]
        );
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[10.0, 30.0, 20.0, 20.0]).expect("defined");
        assert!(close(rho, 0.5, 1e-15), "{rho}");
        // A three-way tie takes the middle rank.
        assert_eq!(
            average_ranks(&[5.0, 5.0, 5.0, 1.0]),
            vec![3.0, 3.0, 3.0, 1.0]
        );
    }

    #[test]
    fn spearman_of_differences_pairs_consecutive_evaluations() {
        // val loss falls smoothly while the metric zigzags: Δval = [−1, −2, −3, −4] (strictly
        // decreasing), Δmetric = [1, 2, 3, 4] → ranks reversed → −1.
        let val = [10.0, 9.0, 7.0, 4.0, 0.0];
        let metric = [0.0, 1.0, 3.0, 6.0, 10.0];
        let rho = spearman_of_differences(&val, &metric).expect("defined");
        assert!(close(rho, -1.0, 1e-15), "{rho}");
        assert_eq!(spearman_of_differences(&val, &metric[..4]), None);
    }

    #[test]
    fn short_constant_and_non_finite_series_give_none() {
        assert_eq!(oscillation_index(&[], 5), None);
        assert_eq!(oscillation_index(&[1.0, 2.0], 5), None);
        assert!(oscillation_index(&[1.0, 2.0, 1.0], 5).is_some());
        assert_eq!(oscillation_index(&[0.0, 0.0, 0.0, 0.0], 5), None);
        assert_eq!(oscillation_index(&[1.0, f64::NAN, 1.0], 5), None);
        assert_eq!(lag1_autocorrelation_of_differences(&[1.0, 2.0]), None);
        // Constant differences: zero variance, the autocorrelation is undefined.
        assert_eq!(
            lag1_autocorrelation_of_differences(&[1.0, 2.0, 3.0, 4.0]),
            None
        );
        assert_eq!(
            lag1_autocorrelation_of_differences(&[1.0, f64::INFINITY, 3.0]),
            None
        );
        assert_eq!(spearman(&[1.0, 2.0], &[2.0, 1.0]), None);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[1.0, 2.0]), None);
        assert_eq!(spearman(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
        // Three evaluations give two differences: too few for Spearman.
        assert_eq!(
            spearman_of_differences(&[3.0, 2.0, 1.0], &[1.0, 3.0, 2.0]),
            None
        );
        let stats = oscillation_stats(&[1.0, 2.0], Some(&[1.0, 2.0]), 5);
        assert_eq!(stats.index, None);
        assert_eq!(stats.lag1_autocorrelation, None);
        assert_eq!(stats.spearman_vs_val_loss, None);
    }

    #[test]
    fn stats_bundle_matches_the_parts() {
        let metric = [0.4, 0.6, 0.3, 0.7, 0.5, 0.2, 0.8];
        let val = [3.0, 2.8, 2.7, 2.5, 2.45, 2.4, 2.3];
        let stats = oscillation_stats(&metric, Some(&val), 5);
        assert_eq!(stats.index, oscillation_index(&metric, 5));
        assert_eq!(
            stats.lag1_autocorrelation,
            lag1_autocorrelation_of_differences(&metric)
        );
        assert_eq!(
            stats.spearman_vs_val_loss,
            spearman_of_differences(&val, &metric)
        );
        assert!(stats.index.is_some_and(|v| v > 0.0));
        assert_eq!(
            oscillation_stats(&metric, None, 5).spearman_vs_val_loss,
            None
        );
    }
}
