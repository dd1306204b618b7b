//! Reset noise with v4's distributions. The draws need not be NumPy's stream (the state after a
//! reset can be given exactly with `Env::reset_to` instead); only the distributions must match:
//! uniform on [-scale, scale) for every qpos entry, and for qvel either the same uniform or
//! `scale * N(0, 1)`, per environment.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The distribution of the qvel noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VelNoise {
    /// Uniform on [-scale, scale) (Walker2d, Hopper, Humanoid).
    Uniform,
    /// `scale * standard_normal()` (HalfCheetah, Ant).
    Normal,
}

/// A seeded noise source for one reset.
pub struct Noise(ChaCha8Rng);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// `low + (high - low) * U[0, 1)`, as NumPy's `uniform(low, high)`.
    pub fn uniform(&mut self, scale: f64) -> f64 {
        let u: f64 = self.0.random();
        -scale + 2.0 * scale * u
    }

    /// A standard normal draw (Box–Muller on two uniforms; exact in distribution).
    pub fn standard_normal(&mut self) -> f64 {
        // 1 - U lies in (0, 1], so the logarithm is finite.
        let u1: f64 = 1.0 - self.0.random::<f64>();
        let u2: f64 = self.0.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `base + noise` element-wise for qpos (always uniform).
    pub fn perturb_uniform(&mut self, base: &[f64], scale: f64) -> Vec<f64> {
        base.iter().map(|b| b + self.uniform(scale)).collect()
    }

    /// `base + noise` for qvel with the environment's distribution.
    pub fn perturb_vel(&mut self, base: &[f64], scale: f64, kind: VelNoise) -> Vec<f64> {
        match kind {
            VelNoise::Uniform => self.perturb_uniform(base, scale),
            VelNoise::Normal => base
                .iter()
                .map(|b| b + scale * self.standard_normal())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let mut n = Noise::new(3);
        let xs: Vec<f64> = (0..20_000).map(|_| n.uniform(0.1)).collect();
        assert!(xs.iter().all(|x| (-0.1..0.1).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.002, "mean {mean}");
        assert!(xs.iter().any(|&x| x < -0.099) && xs.iter().any(|&x| x > 0.099));
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut n = Noise::new(4);
        let xs: Vec<f64> = (0..50_000).map(|_| n.standard_normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn same_seed_same_draws() {
        let a = Noise::new(7).perturb_uniform(&[0.0; 5], 0.005);
        let b = Noise::new(7).perturb_uniform(&[0.0; 5], 0.005);
        let c = Noise::new(8).perturb_uniform(&[0.0; 5], 0.005);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
