//! The cloned policy, whichever `[policy] kind` a config names: [`MlpPolicy`] on the current
//! observation or [`TransformerPolicy`] over a window of them. Both see minibatches as windows
//! (`[B, T, obs_dim]`, T = 1 for the MLP) built by [`Pairs::windows`], so the task, the
//! landscape probe and the rollouts need not know which one they hold.

use anyhow::Result;
use burn::tensor::{Device, Tensor};

use super::mlp::MlpPolicy;
use super::task::{BcBatch, Pairs};
use super::transformer::TransformerPolicy;
use crate::config::{PolicyConfig, PolicyKind};
use crate::model::{HostParams, ParamSpec};
use crate::rl::policy::ActionMap;

#[derive(Clone, Debug)]
pub enum BcPolicy {
    Mlp(MlpPolicy),
    Transformer(TransformerPolicy),
}

impl BcPolicy {
    /// The policy `cfg` describes for `obs_dim`-dimensional observations and actions in `map`'s
    /// bounds. `kind = "linear"` belongs to the linear testbed, which has its own task; it gets
    /// the MLP here only because config validation has already refused it with expert data.
    pub fn new(cfg: &PolicyConfig, obs_dim: usize, map: ActionMap) -> Self {
        match cfg.kind {
            PolicyKind::Transformer => Self::Transformer(TransformerPolicy::new(cfg, obs_dim, map)),
            PolicyKind::Mlp | PolicyKind::Linear => Self::Mlp(MlpPolicy::new(cfg, obs_dim, map)),
        }
    }

    pub fn specs(&self) -> &[ParamSpec] {
        match self {
            Self::Mlp(p) => p.specs(),
            Self::Transformer(p) => p.specs(),
        }
    }

    pub fn init(&self, seed: u64) -> HostParams {
        match self {
            Self::Mlp(p) => p.init(seed),
            Self::Transformer(p) => p.init(seed),
        }
    }

    /// Observations per window: 1 for the MLP, `history` for the transformer.
    pub fn history(&self) -> usize {
        match self {
            Self::Mlp(_) => 1,
            Self::Transformer(p) => p.history,
        }
    }

    pub fn action_dim(&self) -> usize {
        match self {
            Self::Mlp(p) => p.map.scale.len(),
            Self::Transformer(p) => p.map.scale.len(),
        }
    }

    /// The windows ending at pairs `idx`, as this policy reads them.
    pub fn batch(
        &self,
        pairs: &Pairs,
        idx: impl Iterator<Item = usize>,
        device: &Device,
    ) -> BcBatch {
        pairs.windows(idx, self.history(), device)
    }

    /// Actions `[B, T, A]` for a batch's windows.
    pub fn forward(&self, params: &[Tensor<1>], obs: Tensor<3>, device: &Device) -> Tensor<3> {
        match self {
            Self::Mlp(p) => {
                let [b, t, d] = obs.dims();
                p.forward(params, obs.reshape([b * t, d]), device).reshape([
                    b,
                    t,
                    p.map.scale.len(),
                ])
            }
            Self::Transformer(p) => p.forward(params, obs, device),
        }
    }

    /// The BC loss ℓ_BC (Block et al. 2024, §2): the mean squared error to the expert's actions
    /// over the batch's real (unpadded) positions and the action dimensions.
    pub fn loss(&self, params: &[Tensor<1>], batch: &BcBatch) -> Tensor<1> {
        let device = batch.obs.device();
        let diff = self.forward(params, batch.obs.clone(), &device) - batch.actions.clone();
        let sq = diff.clone() * diff;
        match &batch.mask {
            None => sq.mean(),
            Some(mask) => {
                let n = (batch.valid * self.action_dim()).max(1);
                (sq * mask.clone()).sum() / n as f64
            }
        }
    }

    /// ℓ_BC over every window of `pairs` (each pair's window, every real position), in chunks
    /// that bound memory: the validation loss, and the landscape probe's.
    pub fn mean_loss(&self, params: &[Tensor<1>], pairs: &Pairs, device: &Device) -> Result<f64> {
        let n = pairs.len();
        // Attention scores are [chunk, heads, T, T]: bound chunk·T² (about 64 MB of f32 per
        // head at the cap), and the MLP's rows at 8,192.
        let t = self.history();
        let chunk = (16_777_216 / (t * t)).clamp(1, 8192);
        let (mut total, mut positions) = (0.0f64, 0usize);
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let b = self.batch(pairs, start..end, device);
            let loss: f32 = self.loss(params, &b).into_scalar();
            total += loss as f64 * b.valid as f64;
            positions += b.valid;
            start = end;
        }
        Ok(total / positions.max(1) as f64)
    }

    /// One line for the run header.
    pub fn describe(&self, cfg: &PolicyConfig) -> String {
        match self {
            Self::Mlp(p) => p.describe(cfg),
            Self::Transformer(p) => p.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode_pairs() -> Pairs {
        // Two episodes of 3 and 2 pairs; observation i is [i, −i], action i is [i / 10].
        Pairs {
            obs: (0..5).flat_map(|i| [i as f32, -(i as f32)]).collect(),
            actions: (0..5).map(|i| i as f32 / 10.0).collect(),
            t: vec![0, 1, 2, 0, 1],
            obs_dim: 2,
            action_dim: 1,
        }
    }

    /// Windows end at the asked pair, are padded on the left with zeros at an episode's start,
    /// and never reach into the previous episode; the mask marks the real positions.
    #[test]
    fn windows_pad_at_episode_starts() {
        let d = Device::flex();
        let w = episode_pairs().windows([2usize, 3, 4].into_iter(), 3, &d);
        let obs: Vec<f32> = w.obs.to_data().try_to_vec().unwrap();
        assert_eq!(
            obs,
            [
                [0., 0., 1., -1., 2., -2.],
                [0., 0., 0., 0., 3., -3.],
                [0., 0., 3., -3., 4., -4.]
            ]
            .concat()
        );
        let mask: Vec<f32> = w.mask.unwrap().to_data().try_to_vec().unwrap();
        assert_eq!(mask, [1., 1., 1., 0., 0., 1., 0., 1., 1.]);
        assert_eq!(w.valid, 6);
        // No padding, no mask.
        assert!(episode_pairs()
            .windows([2usize].into_iter(), 3, &d)
            .mask
            .is_none());
    }

    /// With every weight zero the transformer acts at the bounds' centre at every position, so
    /// ℓ_BC has a closed form: the mean of (centre − a)² over the real positions only.
    #[test]
    fn transformer_bc_loss_of_the_zero_policy_skips_padding() {
        let d = Device::flex();
        let cfg = PolicyConfig {
            kind: PolicyKind::Transformer,
            n_layer: Some(1),
            n_head: Some(1),
            n_embd: Some(4),
            history: Some(3),
            ..Default::default()
        };
        let p = BcPolicy::new(&cfg, 2, ActionMap::from_bounds(&[0.0], &[0.4])); // centre 0.2
        let zeros: HostParams = p.specs().iter().map(|s| vec![0.0; s.numel()]).collect();
        let params = crate::model::params::upload(p.specs(), &zeros, &d).unwrap();
        let pairs = episode_pairs();
        let b = p.batch(&pairs, [0usize, 4].into_iter(), &d);
        let loss: f32 = p.loss(&params, &b).into_scalar();
        // Window at pair 0: pair 0 alone; at pair 4: pairs 3 and 4.
        let want = [0.0f32, 0.3, 0.4]
            .iter()
            .map(|a| (0.2 - a).powi(2))
            .sum::<f32>()
            / 3.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        // mean_loss weights every real position of every window alike.
        let all = p.mean_loss(&params, &pairs, &d).unwrap();
        let windows = [vec![0], vec![0, 1], vec![0, 1, 2], vec![3], vec![3, 4]];
        let n: usize = windows.iter().map(Vec::len).sum();
        let want_all = windows
            .iter()
            .flatten()
            .map(|&i| (0.2 - i as f64 / 10.0).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!((all - want_all).abs() < 1e-6, "{all} vs {want_all}");
    }
}
