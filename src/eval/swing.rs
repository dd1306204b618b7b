//! The absolute swing of a series: `resid_sd`, the standard deviation of the differenced
//! residuals about the trend, in the metric's own units (issue 17, "Measures that separate swing
//! from level").
//!
//! The oscillation index ([`super::oscillation::oscillation_index`]) is resid_sd / mean|x|. The
//! division makes metrics in different units comparable, but it also makes a series with a lower
//! mean read as oscillating more for the same swing: EMA weights whose greedy validity is 10%
//! instead of 30% get an index three times as large at equal resid_sd. Raw and EMA of one metric
//! share their units, so resid_sd compares them without that confound. Same trend and residual as
//! the index ([`super::oscillation::residual`]), same population std (divide by the n − 1
//! differences).

use super::oscillation::{differences, residual, MIN_SERIES_LEN};

/// std(Δr), r = x − trend(x, `window`), in the units of `x`; `None` for fewer than
/// [`MIN_SERIES_LEN`] points or a non-finite one. Unlike the index it is defined (0) for a
/// series that is 0 throughout, e.g. an EMA policy that never falls.
pub fn resid_sd(x: &[f64], window: usize) -> Option<f64> {
    if x.len() < MIN_SERIES_LEN || x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let d = differences(&residual(x, window));
    Some(population_std(d.iter().copied()))
}

/// Population standard deviation (divide by the count) of a non-empty sequence; NaN if empty.
pub fn population_std(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = v.clone().count() as f64;
    let mean = v.clone().sum::<f64>() / n;
    (v.map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::oscillation::oscillation_index;

    #[test]
    fn resid_sd_by_hand() {
        // x = [0, 2, 0, 2, 0], window 3: trend [0, 2/3, 4/3, 2/3, 0] (the ends are their own
        // trend), residual [0, 4/3, −4/3, 4/3, 0], Δr = [4/3, −8/3, 8/3, −4/3] with mean 0, so
        // the population variance is (16 + 64 + 64 + 16)/9/4 = 40/9 and resid_sd = √40/3 =
        // 2.1081851…; mean|x| = 0.8, so the index is resid_sd / 0.8.
        let x = [0.0, 2.0, 0.0, 2.0, 0.0];
        let expected = 40f64.sqrt() / 3.0;
        let sd = resid_sd(&x, 3).expect("defined");
        assert!((sd - expected).abs() < 1e-12, "{sd} vs {expected}");
        assert!((sd - 2.1081851).abs() < 1e-6, "{sd}");
        let index = oscillation_index(&x, 3).expect("defined");
        assert!((index * 0.8 - sd).abs() < 1e-12);
        // Shifting the level changes the index, not resid_sd.
        let shifted: Vec<f64> = x.iter().map(|v| v + 100.0).collect();
        assert!((resid_sd(&shifted, 3).expect("defined") - expected).abs() < 1e-9);
        assert!(oscillation_index(&shifted, 3).expect("defined") < index / 50.0);
        // All zeros: no index (mean|x| = 0), but resid_sd is 0.
        assert_eq!(resid_sd(&[0.0; 6], 5), Some(0.0));
        assert_eq!(oscillation_index(&[0.0; 6], 5), None);
        assert_eq!(resid_sd(&[1.0, 2.0], 5), None);
        assert_eq!(resid_sd(&[1.0, f64::NAN, 2.0], 5), None);
    }
}
