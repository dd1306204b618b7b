//! The transformer policy (`[policy] kind = "transformer"`): the project's GPT blocks
//! ([`Gpt::hidden_states`]: learned positions, pre-LayerNorm causal blocks, final LayerNorm) over
//! the last `history` normalised observations, a linear embedding in and a linear head out,
//! squashed by tanh and scaled to the action bounds like the MLP. Position j of a window predicts
//! the action taken at that position's observation, so ℓ_BC is taken on every position that holds
//! a real observation; at rollout the action is the last position's.
//!
//! Windows end at the current step and are zero-padded on the left at an episode's start (zero in
//! normalised units: the train episodes' mean observation), in training and at rollout alike.
//!
//! Parameters, in order: `policy.obs_in.weight` `[obs_dim, n_embd]`, `policy.wpe.weight`
//! `[history, n_embd]`, the blocks `policy.h.<i>.*` (GPT-2's names and `[in, out]` layout), the
//! final `policy.ln_f.*`, then `policy.obs_in.bias` `[n_embd]`, `policy.head.weight`
//! `[n_embd, A]` and `policy.head.bias` `[A]`. The first `2 + 12·n_layer + 2` have the GPT's
//! shapes in the GPT's order (with `obs_dim` in the vocabulary's place), which is what
//! [`Gpt::hidden_states`] reads.

use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;

use crate::config::PolicyConfig;
use crate::model::gpt::{Gpt, GptShape};
use crate::model::params::normal_fill;
use crate::model::{HostParams, ParamSpec};
use crate::rl::policy::ActionMap;

use super::mlp::PREFIX;

#[derive(Clone, Debug)]
pub struct TransformerPolicy {
    pub gpt: Gpt,
    pub obs_dim: usize,
    pub map: ActionMap,
    /// Window length: the current observation and the `history − 1` before it.
    pub history: usize,
    specs: Vec<ParamSpec>,
}

impl TransformerPolicy {
    pub fn new(cfg: &PolicyConfig, obs_dim: usize, map: ActionMap) -> Self {
        let dims = cfg.transformer_dims();
        let gpt = Gpt::new(GptShape {
            n_layer: dims.n_layer,
            n_head: dims.n_head,
            n_embd: dims.n_embd,
            block_size: dims.history,
            vocab_size: obs_dim,
            dropout: 0.0,
            activation: Default::default(),
        });
        let c = dims.n_embd;
        let a = map.scale.len();
        let mut specs: Vec<ParamSpec> = gpt
            .specs()
            .iter()
            .map(|s| {
                let name = s
                    .name
                    .replace("transformer.wte.", "obs_in.")
                    .replace("transformer.", "");
                ParamSpec {
                    name: format!("{PREFIX}{name}"),
                    ..s.clone()
                }
            })
            .collect();
        specs.extend([
            ParamSpec::new(format!("{PREFIX}obs_in.bias"), &[c]),
            ParamSpec::new(format!("{PREFIX}head.weight"), &[c, a]),
            ParamSpec::new(format!("{PREFIX}head.bias"), &[a]),
        ]);
        Self {
            gpt,
            obs_dim,
            map,
            history: dims.history,
            specs,
        }
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Parameters the GPT trunk reads (the rest are the input bias and the head).
    fn trunk_len(&self) -> usize {
        self.gpt.specs().len()
    }

    /// GPT-2's initialisation for the trunk and the input map (N(0, 0.02), residual projections
    /// scaled by 1/√(2·n_layer)), the head N(0, 0.02), zero biases.
    pub fn init(&self, seed: u64) -> HostParams {
        let mut p = self.gpt.init(seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6263_7472_6866_6d72);
        let (c, a) = (self.gpt.shape.n_embd, self.map.scale.len());
        p.push(vec![0.0; c]);
        p.push(normal_fill(&mut rng, c * a, 0.02));
        p.push(vec![0.0; a]);
        p
    }

    /// Actions `[B, T, A]` for windows of normalised observations `obs` `[B, T, obs_dim]`
    /// (T ≤ history); position j sees positions ≤ j.
    pub fn forward(&self, params: &[Tensor<1>], obs: Tensor<3>, device: &Device) -> Tensor<3> {
        let k = self.trunk_len();
        let (c, a) = (self.gpt.shape.n_embd, self.map.scale.len());
        let w_in = params[0].clone().reshape([self.obs_dim, c]);
        let x = linear(obs, w_in, Some(params[k].clone()));
        let h = self.gpt.hidden_states(&params[..k], x);
        let w_out = params[k + 1].clone().reshape([c, a]);
        let out = linear(h, w_out, Some(params[k + 2].clone()));
        let (scale, bias) = self.map.tensors(device);
        out.tanh() * scale.unsqueeze::<3>() + bias.unsqueeze::<3>()
    }

    /// One line for the run header.
    pub fn describe(&self) -> String {
        let n: usize = self.specs.iter().map(ParamSpec::numel).sum();
        let s = &self.gpt.shape;
        format!(
            "policy: transformer over the last {} observations ({} → {} layers × {} heads × width {} → {}, tanh, scaled to the action bounds) — {n} parameters",
            self.history,
            self.obs_dim,
            s.n_layer,
            s.n_head,
            s.n_embd,
            self.map.scale.len()
        )
    }
}
