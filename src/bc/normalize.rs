//! Observation normalisation: each dimension's mean and standard deviation over the train
//! episodes used, with a floor on the deviation for (near-)constant dimensions. Computed once in
//! f64, applied in f32 to the data before training and to every observation at rollout; stored in
//! checkpoints as the buffers `obs_mean` and `obs_std`.

use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct ObsNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ObsNorm {
    /// Statistics of `rows` (`[n, dim]`, row-major); the population deviation, floored at
    /// `floor`.
    pub fn fit(rows: &[f32], dim: usize, floor: f64) -> Result<Self> {
        let n = rows.len() / dim;
        if n == 0 {
            bail!("no observations to normalise by");
        }
        let mut mean = vec![0f64; dim];
        for row in rows.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0f64; dim];
        for row in rows.chunks_exact(dim) {
            for ((v, &x), m) in var.iter_mut().zip(row).zip(&mean) {
                *v += (x as f64 - m).powi(2);
            }
        }
        Ok(Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: var
                .iter()
                .map(|&v| (v / n as f64).sqrt().max(floor) as f32)
                .collect(),
        })
    }

    /// `(x − mean)/std`, elementwise, for one observation of any float type.
    pub fn apply(&self, obs: impl IntoIterator<Item = f32>) -> Vec<f32> {
        obs.into_iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(x, (m, s))| (x - m) / s)
            .collect()
    }

    /// Normalises `rows` (`[n, dim]`) in place.
    pub fn apply_rows(&self, rows: &mut [f32]) {
        let dim = self.mean.len();
        for row in rows.chunks_exact_mut(dim) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }

    /// As checkpoint buffers.
    pub fn buffers(&self) -> Vec<(String, Vec<f32>)> {
        vec![
            ("obs_mean".into(), self.mean.clone()),
            ("obs_std".into(), self.std.clone()),
        ]
    }

    /// From checkpoint buffers.
    pub fn from_buffers(buffers: &[(String, Vec<f32>)]) -> Result<Self> {
        let get = |name: &str| {
            buffers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        match (get("obs_mean"), get("obs_std")) {
            (Some(mean), Some(std)) if mean.len() == std.len() => Ok(Self { mean, std }),
            _ => bail!("the checkpoint holds no observation normalisation (buffers obs_mean and obs_std): it is not a BC checkpoint"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against numpy's `x.mean(0)` and `x.std(0)` (population) computed by hand for a 3×2
    /// array, with a constant second column floored.
    #[test]
    fn fit_matches_the_closed_form_and_floors_constant_dimensions() {
        let rows = [1.0, 5.0, 2.0, 5.0, 6.0, 5.0];
        let n = ObsNorm::fit(&rows, 2, 1e-3).unwrap();
        assert!((n.mean[0] - 3.0).abs() < 1e-6 && (n.mean[1] - 5.0).abs() < 1e-6);
        // var = ((−2)² + (−1)² + 3²)/3 = 14/3
        assert!((n.std[0] - (14f32 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(n.std[1], 1e-3);
        let z = n.apply([3.0, 5.0]);
        assert_eq!(z, vec![0.0, 0.0]);
        let back = ObsNorm::from_buffers(&n.buffers()).unwrap();
        assert_eq!(back, n);
    }
}
