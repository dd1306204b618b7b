//! The MLP policy (`[policy] kind = "mlp"`): a fully connected network on the normalised
//! observation whose output is squashed by tanh and scaled to the action bounds, so that it can
//! only propose actions the environment accepts (the experts' deterministic actions are
//! `tanh(μ)·scale + bias` too). Parameters are flat, named `policy.fc1.weight` … `policy.fc_out.bias`.

use burn::tensor::{Device, Tensor};

use crate::config::{PolicyActivation, PolicyConfig};
use crate::model::{HostParams, ParamSpec};
use crate::rl::mlp::{Activation, MlpShape};
use crate::rl::policy::ActionMap;

/// Parameter name prefix.
pub const PREFIX: &str = "policy.";

#[derive(Clone, Debug)]
pub struct MlpPolicy {
    pub shape: MlpShape,
    pub map: ActionMap,
    specs: Vec<ParamSpec>,
}

impl MlpPolicy {
    pub fn new(cfg: &PolicyConfig, obs_dim: usize, map: ActionMap) -> Self {
        let shape = MlpShape {
            input: obs_dim,
            hidden: cfg.hidden.clone(),
            heads: vec![("fc_out".into(), map.scale.len())],
            activation: match cfg.activation {
                PolicyActivation::Gelu => Activation::Gelu,
                PolicyActivation::Relu => Activation::Relu,
                PolicyActivation::Tanh => Activation::Tanh,
            },
        };
        let specs = shape.specs(PREFIX);
        Self { shape, map, specs }
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// PyTorch's default `nn.Linear` initialisation, from `seed`.
    pub fn init(&self, seed: u64) -> HostParams {
        self.shape.init(seed)
    }

    /// Actions `[B, A]` for normalised observations `obs` `[B, obs_dim]`.
    pub fn forward(&self, params: &[Tensor<1>], obs: Tensor<2>, device: &Device) -> Tensor<2> {
        let out = self.shape.forward(params, obs).remove(0);
        let (scale, bias) = self.map.tensors(device);
        out.tanh() * scale + bias
    }

    /// The BC loss ℓ_BC: the mean squared error to the expert's actions over the batch and the
    /// action dimensions (Block et al. 2024, §2). `obs` `[B, obs_dim]`, `actions` `[B, A]`.
    pub fn loss(
        &self,
        params: &[Tensor<1>],
        obs: Tensor<2>,
        actions: Tensor<2>,
        device: &Device,
    ) -> Tensor<1> {
        let diff = self.forward(params, obs, device) - actions;
        (diff.clone() * diff).mean()
    }

    /// The same action on the host for one normalised observation (f32), for rollouts.
    pub fn act_host(&self, params: &[Vec<f32>], obs: &[f32]) -> Vec<f32> {
        let out = self.shape.forward_host(params, obs).remove(0);
        out.iter()
            .zip(self.map.scale.iter().zip(&self.map.bias))
            .map(|(u, (s, b))| u.tanh() * s + b)
            .collect()
    }

    /// One line for the run header.
    pub fn describe(&self, cfg: &PolicyConfig) -> String {
        let n: usize = self.specs.iter().map(ParamSpec::numel).sum();
        format!(
            "policy: MLP {} → {:?} ({:?}) → {} (tanh, scaled to the action bounds) — {n} parameters",
            self.shape.input,
            cfg.hidden,
            cfg.activation,
            self.map.scale.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn device_and_host_actions_agree_and_respect_the_bounds() {
        let d = Device::flex();
        let cfg = PolicyConfig {
            hidden: vec![8, 8],
            ..Default::default()
        };
        let map = ActionMap::from_bounds(&[-0.4, -1.0], &[0.4, 3.0]);
        let p = MlpPolicy::new(&cfg, 3, map);
        let mut host = p.init(5);
        // Large output weights saturate the tanh: the actions must still lie in the bounds.
        host[4].iter_mut().for_each(|w| *w *= 50.0);
        let params = crate::model::params::upload(p.specs(), &host, &d).unwrap();
        let x = vec![0.5f32, -2.0, 1.5];
        let dev = p
            .forward(
                &params,
                Tensor::from_data(TensorData::new(x.clone(), [1, 3]), &d),
                &d,
            )
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        let h = p.act_host(&host, &x);
        for (a, b) in dev.iter().zip(&h) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(
            (-0.4..=0.4).contains(&h[0]) && (-1.0..=3.0).contains(&h[1]),
            "{h:?}"
        );
    }

    /// With every weight zero the policy's action is the bounds' centre, so ℓ_BC has a closed
    /// form: the mean over batch and dimensions of (centre − a)².
    #[test]
    fn bc_loss_of_the_zero_policy_is_the_closed_form() {
        let d = Device::flex();
        let map = ActionMap::from_bounds(&[-1.0, 0.0], &[1.0, 2.0]); // centres 0 and 1
        let p = MlpPolicy::new(&PolicyConfig::default(), 2, map);
        let zeros: HostParams = p.specs().iter().map(|s| vec![0.0; s.numel()]).collect();
        let params = crate::model::params::upload(p.specs(), &zeros, &d).unwrap();
        let obs = Tensor::from_data(TensorData::new(vec![0.3f32, 0.1, -0.5, 2.0], [2, 2]), &d);
        let acts = Tensor::from_data(TensorData::new(vec![0.5f32, 1.0, -0.25, 3.0], [2, 2]), &d);
        let loss: f32 = p.loss(&params, obs, acts, &d).into_scalar();
        let want = (0.5f32.powi(2) + 0.0 + 0.25f32.powi(2) + 2.0f32.powi(2)) / 4.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }
}
