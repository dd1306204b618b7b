//! The small fully connected networks of SAC and of behaviour cloning, as flat parameter lists
//! like the GPT's (so the project's AdamW, Polyak update and checkpoint code treat them alike).
//!
//! A network is a trunk `fc1 … fcN` (ReLU for SAC, as CleanRL; GELU by default for BC) followed
//! by one or more linear heads. Every weight is
//! stored `[in, out]`, so a layer is `y = x @ W + b` (the Hugging Face GPT-2 convention the rest
//! of lmtrain uses; PyTorch's `nn.Linear.weight` is the transpose). CleanRL's names:
//! the actor's heads are `fc_mean` and `fc_logstd`, each critic's head is `fc{N+1}`.

use burn::tensor::activation::{gelu, relu};
use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{HostParams, ParamSpec};

/// The trunk's nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// Exact GELU, x·Φ(x) with the erf.
    Gelu,
    Tanh,
}

impl Activation {
    fn device(self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Activation::Relu => relu(x),
            Activation::Gelu => gelu(x),
            Activation::Tanh => x.tanh(),
        }
    }

    fn host(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::Tanh => x.tanh(),
        }
    }
}

/// Layer sizes of one network.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpShape {
    pub input: usize,
    pub hidden: Vec<usize>,
    /// Each head's name and width.
    pub heads: Vec<(String, usize)>,
    pub activation: Activation,
}

impl MlpShape {
    /// SAC's actor: observation → trunk → (`fc_mean`, `fc_logstd`), each of the action's width.
    pub fn actor(obs_dim: usize, action_dim: usize, hidden: &[usize]) -> Self {
        Self {
            input: obs_dim,
            hidden: hidden.to_vec(),
            heads: vec![
                ("fc_mean".into(), action_dim),
                ("fc_logstd".into(), action_dim),
            ],
            activation: Activation::Relu,
        }
    }

    /// SAC's critic Q(s, a): [observation ‖ action] → trunk → one value.
    pub fn critic(obs_dim: usize, action_dim: usize, hidden: &[usize]) -> Self {
        Self {
            input: obs_dim + action_dim,
            hidden: hidden.to_vec(),
            heads: vec![(format!("fc{}", hidden.len() + 1), 1)],
            activation: Activation::Relu,
        }
    }

    /// (name, fan-in, fan-out) of every layer, trunk first.
    fn layers(&self) -> Vec<(String, usize, usize)> {
        let mut out = Vec::new();
        let mut width = self.input;
        for (i, &h) in self.hidden.iter().enumerate() {
            out.push((format!("fc{}", i + 1), width, h));
            width = h;
        }
        for (name, w) in &self.heads {
            out.push((name.clone(), width, *w));
        }
        out
    }

    /// Parameter specs, each name prefixed (e.g. `qf1.`): weight `[in, out]`, then bias `[out]`.
    pub fn specs(&self, prefix: &str) -> Vec<ParamSpec> {
        self.layers()
            .into_iter()
            .flat_map(|(name, i, o)| {
                [
                    ParamSpec::new(format!("{prefix}{name}.weight"), &[i, o]),
                    ParamSpec::new(format!("{prefix}{name}.bias"), &[o]),
                ]
            })
            .collect()
    }

    /// PyTorch's default `nn.Linear` initialisation (CleanRL keeps it): weight and bias
    /// uniform in ±1/√fan_in, drawn from a ChaCha8 stream seeded with `seed`.
    pub fn init(&self, seed: u64) -> HostParams {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for (_, i, o) in self.layers() {
            let bound = 1.0 / (i as f32).sqrt();
            out.push(
                (0..i * o)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect(),
            );
            out.push((0..o).map(|_| rng.random_range(-bound..bound)).collect());
        }
        out
    }

    /// The forward pass on the device: `x` is `[batch, input]`, `params` in [`Self::specs`]
    /// order; returns each head's output, `[batch, width]`.
    pub fn forward(&self, params: &[Tensor<1>], x: Tensor<2>) -> Vec<Tensor<2>> {
        let layers = self.layers();
        let n = self.hidden.len();
        let dense = |k: usize, x: Tensor<2>| -> Tensor<2> {
            let (_, i, o) = &layers[k];
            let w = params[2 * k].clone().reshape([*i, *o]);
            let b = params[2 * k + 1].clone().reshape([1, *o]);
            x.matmul(w) + b
        };
        let mut h = x;
        for k in 0..n {
            h = self.activation.device(dense(k, h));
        }
        (n..layers.len()).map(|k| dense(k, h.clone())).collect()
    }

    /// The same forward pass on the host for one input (f32 throughout), for acting in the
    /// environment and for rollouts: no device round trip per step.
    pub fn forward_host(&self, params: &[Vec<f32>], x: &[f32]) -> Vec<Vec<f32>> {
        let layers = self.layers();
        let n = self.hidden.len();
        let dense = |k: usize, x: &[f32]| -> Vec<f32> {
            let (_, i, o) = &layers[k];
            let (w, b) = (&params[2 * k], &params[2 * k + 1]);
            let mut y = b.clone();
            for (r, &xr) in x.iter().enumerate().take(*i) {
                let row = &w[r * o..(r + 1) * o];
                for (yj, wj) in y.iter_mut().zip(row) {
                    *yj += xr * wj;
                }
            }
            y
        };
        let mut h = x.to_vec();
        for k in 0..n {
            h = dense(k, &h)
                .into_iter()
                .map(|v| self.activation.host(v))
                .collect();
        }
        (n..layers.len()).map(|k| dense(k, &h)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn device_and_host_forward_agree() {
        for activation in [Activation::Relu, Activation::Gelu, Activation::Tanh] {
            device_and_host_agree(activation);
        }
    }

    fn device_and_host_agree(activation: Activation) {
        let d = Device::flex();
        let mut shape = MlpShape::actor(5, 3, &[7, 4]);
        shape.activation = activation;
        let host = shape.init(3);
        let params = crate::model::params::upload(&shape.specs("actor."), &host, &d).unwrap();
        let x: Vec<f32> = vec![0.3, -1.2, 0.5, 2.0, -0.7];
        let out = shape.forward(
            &params,
            Tensor::from_data(TensorData::new(x.clone(), [1, 5]), &d),
        );
        let host_out = shape.forward_host(&host, &x);
        for (a, b) in out.iter().zip(&host_out) {
            let a = a.to_data().try_to_vec::<f32>().unwrap();
            for (u, v) in a.iter().zip(b) {
                assert!((u - v).abs() < 1e-5, "{u} vs {v}");
            }
        }
        assert_eq!(host_out[0].len(), 3);
        assert_eq!(host_out[1].len(), 3);
    }

    #[test]
    fn init_is_bounded_by_fan_in() {
        let shape = MlpShape::critic(10, 6, &[8]);
        let p = shape.init(0);
        let bound = 1.0 / 16f32.sqrt();
        assert!(p[0].iter().all(|v| v.abs() <= bound));
        // Not all equal: the draw is really random.
        assert!(p[0].iter().any(|v| (v - p[0][0]).abs() > 1e-6));
        assert_eq!(shape.specs("qf1.")[2].name, "qf1.fc2.weight");
        assert_eq!(shape.specs("qf1.")[2].shape, vec![8, 1]);
    }
}
