//! SAC's tanh-squashed Gaussian policy (Haarnoja et al. 2018, appendix C; CleanRL's
//! `Actor.get_action`).
//!
//! The actor's heads give a mean μ and a raw log-std r per action dimension; the log-std is
//! `log σ = min + (max − min)·(tanh r + 1)/2`. A sample is `u = μ + σ·ε` with ε ~ N(0, 1),
//! squashed and rescaled to the action bounds: `a = tanh(u)·scale + bias`, scale and bias the
//! half-width and centre of the bounds (Humanoid's are ±0.4). Its log-density is the Gaussian's
//! less the log-Jacobian of the squash and the scale, summed over dimensions:
//!
//! `log π(a|s) = Σ_i [ −ε_i²/2 − log σ_i − log(2π)/2 − log(scale_i·(1 − tanh²u_i) + 1e−6) ]`
//!
//! (the 1e−6 is CleanRL's guard against log 0 at saturation). The deterministic policy, used for
//! evaluation and the shipped experts, is `tanh(μ)·scale + bias`.

use burn::tensor::{Tensor, TensorData};

use super::mlp::MlpShape;
use crate::model::HostParams;

/// CleanRL's guard inside the log-Jacobian.
pub const LOG_JACOBIAN_EPS: f64 = 1e-6;

/// The action space's affine map from the squash's (−1, 1) to the bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionMap {
    /// Half-widths `(high − low)/2`, one per dimension.
    pub scale: Vec<f32>,
    /// Centres `(high + low)/2`.
    pub bias: Vec<f32>,
}

impl ActionMap {
    pub fn from_bounds(low: &[f32], high: &[f32]) -> Self {
        Self {
            scale: low.iter().zip(high).map(|(l, h)| (h - l) / 2.0).collect(),
            bias: low.iter().zip(high).map(|(l, h)| (h + l) / 2.0).collect(),
        }
    }

    /// Uploads scale and bias as `[1, A]` rows.
    pub fn tensors(&self, device: &burn::tensor::Device) -> (Tensor<2>, Tensor<2>) {
        let a = self.scale.len();
        let row = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, a]), device);
        (row(&self.scale), row(&self.bias))
    }
}

/// The log-std bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogStdBounds {
    pub min: f64,
    pub max: f64,
}

impl LogStdBounds {
    fn rescale(&self, t: f64) -> f64 {
        self.min + 0.5 * (self.max - self.min) * (t + 1.0)
    }
}

/// A reparameterised sample on the device: `mean`, `log_std_raw` and `noise` are `[B, A]`,
/// `scale` and `bias` `[1, A]`. Returns the action `[B, A]` and its log-density `[B, 1]`
/// (gradients flow to `mean` and `log_std_raw` through both).
pub fn sample(
    mean: Tensor<2>,
    log_std_raw: Tensor<2>,
    noise: Tensor<2>,
    (scale, bias): (Tensor<2>, Tensor<2>),
    bounds: LogStdBounds,
) -> (Tensor<2>, Tensor<2>) {
    let half = 0.5 * (bounds.max - bounds.min);
    let log_std = (log_std_raw.tanh() + 1.0) * half + bounds.min;
    let u = mean + log_std.clone().exp() * noise.clone();
    let y = u.tanh();
    let action = y.clone() * scale.clone() + bias;
    let gauss = noise.clone() * noise * (-0.5) - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln();
    let jacobian = ((y.clone() * y).neg() + 1.0) * scale + LOG_JACOBIAN_EPS;
    let log_prob = (gauss - jacobian.log()).sum_dim(1);
    (action, log_prob)
}

/// The actor on the host, for acting and rollouts (one observation at a time, f32 like the
/// device forward; observations arrive as the environments' f64 and are cast first).
#[derive(Clone, Debug)]
pub struct HostActor {
    pub shape: MlpShape,
    pub params: HostParams,
    pub map: ActionMap,
    pub bounds: LogStdBounds,
}

impl HostActor {
    /// The deterministic action `tanh(μ)·scale + bias`.
    pub fn mean_action(&self, obs: &[f64]) -> Vec<f32> {
        let x: Vec<f32> = obs.iter().map(|&v| v as f32).collect();
        let heads = self.shape.forward_host(&self.params, &x);
        heads[0]
            .iter()
            .zip(self.map.scale.iter().zip(&self.map.bias))
            .map(|(m, (s, b))| m.tanh() * s + b)
            .collect()
    }

    /// A stochastic action for the standard normal draws `noise` (one per dimension).
    pub fn sample_action(&self, obs: &[f64], noise: &[f32]) -> Vec<f32> {
        let x: Vec<f32> = obs.iter().map(|&v| v as f32).collect();
        let heads = self.shape.forward_host(&self.params, &x);
        (0..heads[0].len())
            .map(|i| {
                let log_std = self.bounds.rescale(heads[1][i].tanh() as f64) as f32;
                let u = heads[0][i] + log_std.exp() * noise[i];
                u.tanh() * self.map.scale[i] + self.map.bias[i]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn row(v: &[f32], d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len(), 1]), d)
    }

    /// One dimension, scale 0.4 and bias 0.1 (Humanoid-like bounds): the log-density against
    /// the change-of-variables formula written out in f64, and its integral over the action
    /// interval against 1. Without the tanh/scale correction the integral is far from 1.
    #[test]
    fn log_density_matches_the_closed_form_and_integrates_to_one() {
        let d = Device::flex();
        let (mu, raw, s, b) = (0.3f64, -0.4f64, 0.4f64, 0.1f64);
        let bounds = LogStdBounds {
            min: -5.0,
            max: 2.0,
        };
        let log_std = bounds.rescale(raw.tanh());
        let sigma = log_std.exp();
        // A fine grid over the open action interval (b − s, b + s).
        let n = 4000;
        let mut noise = Vec::new();
        let mut actions = Vec::new();
        for k in 0..n {
            let a = b - s + 2.0 * s * (k as f64 + 0.5) / n as f64;
            let u = ((a - b) / s).atanh();
            noise.push(((u - mu) / sigma) as f32);
            actions.push(a);
        }
        let (action, log_prob) = sample(
            row(&vec![mu as f32; n], &d),
            row(&vec![raw as f32; n], &d),
            row(&noise, &d),
            (row(&[s as f32], &d), row(&[b as f32], &d)),
            bounds,
        );
        let action = action.to_data().try_to_vec::<f32>().unwrap();
        let log_prob = log_prob.to_data().try_to_vec::<f32>().unwrap();
        let mut integral = 0.0;
        for k in 0..n {
            let a = actions[k];
            let u = ((a - b) / s).atanh();
            let y = u.tanh();
            let closed = -0.5 * ((u - mu) / sigma).powi(2)
                - sigma.ln()
                - 0.5 * (2.0 * std::f64::consts::PI).ln()
                - (s * (1.0 - y * y) + LOG_JACOBIAN_EPS).ln();
            assert!((action[k] as f64 - a).abs() < 1e-4, "action {k}");
            // Near the interval's ends tanh saturates in f32; the bulk must agree closely.
            if k > n / 20 && k < n - n / 20 {
                assert!(
                    (log_prob[k] as f64 - closed).abs() < 1e-3,
                    "log-density at a = {a}: {} vs {closed}",
                    log_prob[k]
                );
            }
            integral += (closed).exp() * 2.0 * s / n as f64;
        }
        assert!(
            (integral - 1.0).abs() < 5e-3,
            "density integrates to {integral}"
        );
    }

    #[test]
    fn host_actions_match_the_device_sample() {
        let d = Device::flex();
        let shape = MlpShape::actor(4, 2, &[6]);
        let params = shape.init(9);
        let map = ActionMap::from_bounds(&[-0.4, -1.0], &[0.4, 1.0]);
        let bounds = LogStdBounds {
            min: -5.0,
            max: 2.0,
        };
        let actor = HostActor {
            shape: shape.clone(),
            params: params.clone(),
            map: map.clone(),
            bounds,
        };
        let obs = [0.5f64, -0.25, 1.5, 0.0];
        let noise = [0.7f32, -1.3];
        let dev = crate::model::params::upload(&shape.specs("actor."), &params, &d).unwrap();
        let x = Tensor::from_data(
            TensorData::new(obs.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, 4]),
            &d,
        );
        let heads = shape.forward(&dev, x);
        let (a, _) = sample(
            heads[0].clone(),
            heads[1].clone(),
            Tensor::from_data(TensorData::new(noise.to_vec(), [1, 2]), &d),
            map.tensors(&d),
            bounds,
        );
        let a = a.to_data().try_to_vec::<f32>().unwrap();
        let h = actor.sample_action(&obs, &noise);
        for (x, y) in a.iter().zip(&h) {
            assert!((x - y).abs() < 1e-5);
        }
        let m = actor.mean_action(&obs);
        assert!(m[0].abs() <= 0.4 && m[1].abs() <= 1.0);
    }
}
