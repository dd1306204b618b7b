//! Soft actor-critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"),
//! one update as CleanRL's `sac_continuous_action.py` does it:
//!
//! - critics: `y = r + γ·(1 − terminated)·(min(Q̄1, Q̄2)(s′, a′) − α·log π(a′|s′))` with
//!   `a′ ~ π(·|s′)` from the current actor and the target critics Q̄ (kept out of autodiff);
//!   loss `MSE(Q1(s, a), y) + MSE(Q2(s, a), y)`, one Adam over both critics;
//! - every `policy_every` steps, `policy_every` actor updates, each followed by an α update:
//!   actor loss `mean(α·log π(ã|s) − min(Q1, Q2)(s, ã))`, `ã` reparameterised; α loss
//!   `mean(−exp(log α)·(log π(ã|s) + H̄))`, `H̄ = −|A|`, with log π recomputed (fresh noise)
//!   after the actor update and held constant;
//! - Polyak averaging of the targets after every update: `Q̄ ← τ·Q + (1 − τ)·Q̄`.
//!
//! The noise of every sample is drawn on the host from (seed, step, stream) and uploaded, so a
//! run's randomness needs no saved RNG state.

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::mlp::MlpShape;
use super::policy::{sample, ActionMap, HostActor, LogStdBounds};
use super::replay_buffer::Batch;
use crate::config::{OptimConfig, SacConfig};
use crate::model::params::{download, upload};
use crate::model::{HostParams, ParamSpec};
use crate::train::adamw::AdamW;
use crate::train::step::{gradients, tracked_copies};

/// `n` standard normal draws from a ChaCha8 stream seeded with `seed`.
pub fn normals(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// The shapes of SAC's networks for one environment.
#[derive(Clone, Debug)]
pub struct SacShapes {
    pub obs_dim: usize,
    pub action_dim: usize,
    pub actor: MlpShape,
    pub critic: MlpShape,
    pub map: ActionMap,
    pub bounds: LogStdBounds,
}

impl SacShapes {
    pub fn new(obs_dim: usize, (low, high): (&[f32], &[f32]), cfg: &SacConfig) -> Self {
        let action_dim = low.len();
        Self {
            obs_dim,
            action_dim,
            actor: MlpShape::actor(obs_dim, action_dim, &cfg.hidden),
            critic: MlpShape::critic(obs_dim, action_dim, &cfg.hidden),
            map: ActionMap::from_bounds(low, high),
            bounds: LogStdBounds {
                min: cfg.log_std_min,
                max: cfg.log_std_max,
            },
        }
    }

    pub fn actor_specs(&self) -> Vec<ParamSpec> {
        self.actor.specs("actor.")
    }

    /// Both critics' specs, `qf1.` then `qf2.` (the order of the critics' Adam).
    pub fn critic_specs(&self) -> Vec<ParamSpec> {
        let mut s = self.critic.specs("qf1.");
        s.extend(self.critic.specs("qf2."));
        s
    }
}

/// Everything SAC learns and its optimizers' state, on the device.
pub struct SacState {
    pub actor: Vec<Tensor<1>>,
    /// qf1's tensors then qf2's, as [`SacShapes::critic_specs`].
    pub critics: Vec<Tensor<1>>,
    pub targets: Vec<Tensor<1>>,
    /// `[1]`.
    pub log_alpha: Tensor<1>,
    pub actor_opt: AdamW,
    pub critic_opt: AdamW,
    pub alpha_opt: AdamW,
    /// Adam step counts (for bias correction), as torch keeps them per optimizer.
    pub actor_steps: u64,
    pub critic_steps: u64,
    pub alpha_steps: u64,
}

/// Host copies of a [`SacState`], as checkpoints hold it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostSacState {
    pub actor: HostParams,
    pub critics: HostParams,
    pub targets: HostParams,
    pub log_alpha: f32,
    pub actor_m: HostParams,
    pub actor_v: HostParams,
    pub critic_m: HostParams,
    pub critic_v: HostParams,
    pub alpha_m: f32,
    pub alpha_v: f32,
    pub actor_steps: u64,
    pub critic_steps: u64,
    pub alpha_steps: u64,
}

impl HostSacState {
    /// Fresh networks (PyTorch's default init from `seed`), targets equal to the critics,
    /// log α = 0 (α = 1, CleanRL's start) or ln(`alpha`) when not autotuned, zero moments.
    pub fn init(shapes: &SacShapes, cfg: &SacConfig, seed: u64) -> Self {
        let actor = shapes
            .actor
            .init(crate::train::step::step_seed(seed, 0, 101));
        let mut critics = shapes
            .critic
            .init(crate::train::step::step_seed(seed, 0, 102));
        critics.extend(
            shapes
                .critic
                .init(crate::train::step::step_seed(seed, 0, 103)),
        );
        let zeros = |p: &HostParams| p.iter().map(|v| vec![0.0; v.len()]).collect::<HostParams>();
        Self {
            actor_m: zeros(&actor),
            actor_v: zeros(&actor),
            critic_m: zeros(&critics),
            critic_v: zeros(&critics),
            targets: critics.clone(),
            actor,
            critics,
            log_alpha: if cfg.autotune {
                0.0
            } else {
                cfg.alpha.ln() as f32
            },
            alpha_m: 0.0,
            alpha_v: 0.0,
            actor_steps: 0,
            critic_steps: 0,
            alpha_steps: 0,
        }
    }

    pub fn upload(&self, shapes: &SacShapes, device: &Device) -> anyhow::Result<SacState> {
        let (a, c) = (shapes.actor_specs(), shapes.critic_specs());
        let scalar = |v: f32| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), device);
        Ok(SacState {
            actor: upload(&a, &self.actor, device)?,
            critics: upload(&c, &self.critics, device)?,
            targets: upload(&c, &self.targets, device)?,
            log_alpha: scalar(self.log_alpha),
            actor_opt: AdamW {
                m: upload(&a, &self.actor_m, device)?,
                v: upload(&a, &self.actor_v, device)?,
            },
            critic_opt: AdamW {
                m: upload(&c, &self.critic_m, device)?,
                v: upload(&c, &self.critic_v, device)?,
            },
            alpha_opt: AdamW {
                m: vec![scalar(self.alpha_m)],
                v: vec![scalar(self.alpha_v)],
            },
            actor_steps: self.actor_steps,
            critic_steps: self.critic_steps,
            alpha_steps: self.alpha_steps,
        })
    }
}

fn read_one(t: &Tensor<1>) -> anyhow::Result<f32> {
    t.clone()
        .try_into_scalar::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read a scalar from the device: {e:?}"))
}

impl SacState {
    pub fn download(&self) -> anyhow::Result<HostSacState> {
        Ok(HostSacState {
            actor: download(&self.actor)?,
            critics: download(&self.critics)?,
            targets: download(&self.targets)?,
            log_alpha: read_one(&self.log_alpha)?,
            actor_m: download(&self.actor_opt.m)?,
            actor_v: download(&self.actor_opt.v)?,
            critic_m: download(&self.critic_opt.m)?,
            critic_v: download(&self.critic_opt.v)?,
            alpha_m: read_one(&self.alpha_opt.m[0])?,
            alpha_v: read_one(&self.alpha_opt.v[0])?,
            actor_steps: self.actor_steps,
            critic_steps: self.critic_steps,
            alpha_steps: self.alpha_steps,
        })
    }

    /// The current actor on the host (one device read per tensor).
    pub fn host_actor(&self, shapes: &SacShapes) -> anyhow::Result<HostActor> {
        Ok(HostActor {
            shape: shapes.actor.clone(),
            params: download(&self.actor)?,
            map: shapes.map.clone(),
            bounds: shapes.bounds,
        })
    }
}

/// The standard normal draws one update consumes: `[B·A]` for the critic target's next
/// actions, and per actor update a pair (the actor's sample, the α update's resample).
pub struct UpdateNoise {
    pub target: Vec<f32>,
    pub policy: Vec<(Vec<f32>, Vec<f32>)>,
}

impl UpdateNoise {
    /// Draws from (seed, step): stream 2 for the target, 3 + 2k and 4 + 2k for actor update k.
    pub fn draw(
        seed: u64,
        step: u64,
        batch: usize,
        action_dim: usize,
        policy_updates: u64,
    ) -> Self {
        let n = batch * action_dim;
        let s = |stream: u64| crate::train::step::step_seed(seed, step, stream);
        Self {
            target: normals(s(2), n),
            policy: (0..policy_updates)
                .map(|k| (normals(s(3 + 2 * k), n), normals(s(4 + 2 * k), n)))
                .collect(),
        }
    }
}

/// Device scalars of one update, read only at log steps.
pub struct UpdateStats {
    pub qf1_loss: Tensor<1>,
    pub qf2_loss: Tensor<1>,
    /// Of the last actor update of this step, when there was one.
    pub actor_loss: Option<Tensor<1>>,
    pub alpha_loss: Option<Tensor<1>>,
    /// −mean log π of the last actor update's sample.
    pub entropy: Option<Tensor<1>>,
}

fn adam(lr: f64) -> OptimConfig {
    // torch.optim.Adam's defaults, which CleanRL keeps; no weight decay.
    OptimConfig {
        kind: Default::default(),
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        grad_clip: 0.0,
        grad_accum: 1,
    }
}

/// Uploads a row-major `[rows, cols]` host matrix.
fn matrix(v: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), [rows, cols]), device)
}

/// One SAC update on `batch`: the critics, then (when `noise.policy` is not empty) the actor
/// and α updates, then the Polyak update of the targets.
pub fn update(
    state: &mut SacState,
    shapes: &SacShapes,
    cfg: &SacConfig,
    batch: &Batch,
    noise: &UpdateNoise,
    device: &Device,
) -> UpdateStats {
    let (b, o, a) = (batch.size, shapes.obs_dim, shapes.action_dim);
    let obs = matrix(&batch.obs, b, o, device);
    let actions = matrix(&batch.actions, b, a, device);
    let rewards = matrix(&batch.rewards, b, 1, device);
    let not_done = matrix(&batch.terminated, b, 1, device).neg() + 1.0;
    let next_obs = matrix(&batch.next_obs, b, o, device);
    let (scale, bias) = shapes.map.tensors(device);
    let n_critic = state.critics.len() / 2;

    // The critic target, outside autodiff.
    let alpha = state.log_alpha.clone().exp().reshape([1, 1]);
    let heads = shapes.actor.forward(&state.actor, next_obs.clone());
    let (next_a, next_logp) = sample(
        heads[0].clone(),
        heads[1].clone(),
        matrix(&noise.target, b, a, device),
        (scale.clone(), bias.clone()),
        shapes.bounds,
    );
    let next_x = Tensor::cat(vec![next_obs, next_a], 1);
    let q1t = shapes
        .critic
        .forward(&state.targets[..n_critic], next_x.clone())
        .remove(0);
    let q2t = shapes
        .critic
        .forward(&state.targets[n_critic..], next_x)
        .remove(0);
    let soft_v = q1t.min_pair(q2t) - alpha.clone() * next_logp;
    let target = rewards + not_done * soft_v * cfg.gamma;

    // The critics' update.
    let tracked = tracked_copies(&state.critics);
    let x = Tensor::cat(vec![obs.clone(), actions], 1).autodiff();
    let target_ad = target.autodiff();
    let q1 = shapes
        .critic
        .forward(&tracked[..n_critic], x.clone())
        .remove(0);
    let q2 = shapes.critic.forward(&tracked[n_critic..], x).remove(0);
    let qf1_loss = (q1 - target_ad.clone()).square().mean();
    let qf2_loss = (q2 - target_ad).square().mean();
    let grads = (qf1_loss.clone() + qf2_loss.clone()).backward();
    let critic_grads = gradients(&tracked, &grads);
    state.critic_steps += 1;
    state.critic_opt.step(
        &mut state.critics,
        &critic_grads,
        &shapes.critic_specs(),
        state.critic_steps,
        cfg.q_lr,
        &adam(cfg.q_lr),
    );
    let mut stats = UpdateStats {
        qf1_loss: qf1_loss.inner(),
        qf2_loss: qf2_loss.inner(),
        actor_loss: None,
        alpha_loss: None,
        entropy: None,
    };

    // The actor and α updates, on the same batch, against the just-updated critics.
    let target_entropy = -(a as f64);
    let obs_ad = obs.clone().autodiff();
    let critics_ad: Vec<Tensor<1>> = state.critics.iter().map(|p| p.clone().autodiff()).collect();
    let actor_specs = shapes.actor_specs();
    for (pi_noise, alpha_noise) in &noise.policy {
        let alpha = state.log_alpha.clone().exp().reshape([1, 1]).autodiff();
        let tracked = tracked_copies(&state.actor);
        let heads = shapes.actor.forward(&tracked, obs_ad.clone());
        let (pi, logp) = sample(
            heads[0].clone(),
            heads[1].clone(),
            matrix(pi_noise, b, a, device).autodiff(),
            (scale.clone().autodiff(), bias.clone().autodiff()),
            shapes.bounds,
        );
        let x = Tensor::cat(vec![obs_ad.clone(), pi], 1);
        let q1 = shapes
            .critic
            .forward(&critics_ad[..n_critic], x.clone())
            .remove(0);
        let q2 = shapes.critic.forward(&critics_ad[n_critic..], x).remove(0);
        let actor_loss = (alpha * logp.clone() - q1.min_pair(q2)).mean();
        let grads = actor_loss.backward();
        let actor_grads = gradients(&tracked, &grads);
        state.actor_steps += 1;
        state.actor_opt.step(
            &mut state.actor,
            &actor_grads,
            &actor_specs,
            state.actor_steps,
            cfg.policy_lr,
            &adam(cfg.policy_lr),
        );
        stats.actor_loss = Some(actor_loss.inner());
        stats.entropy = Some(logp.inner().mean().neg());
        if cfg.autotune {
            let heads = shapes.actor.forward(&state.actor, obs.clone());
            let (_, logp) = sample(
                heads[0].clone(),
                heads[1].clone(),
                matrix(alpha_noise, b, a, device),
                (scale.clone(), bias.clone()),
                shapes.bounds,
            );
            // d/d(log α) of mean(−exp(log α)·(log π + H̄)) in closed form: the loss is linear in
            // exp(log α), so the gradient equals the loss itself.
            let alpha_now = state.log_alpha.clone().exp();
            let alpha_loss = alpha_now.neg() * (logp + target_entropy).mean();
            state.alpha_steps += 1;
            let mut log_alpha = vec![state.log_alpha.clone()];
            state.alpha_opt.step(
                &mut log_alpha,
                std::slice::from_ref(&alpha_loss),
                &[ParamSpec::new("log_alpha", &[1])],
                state.alpha_steps,
                cfg.q_lr,
                &adam(cfg.q_lr),
            );
            state.log_alpha = log_alpha.remove(0);
            stats.alpha_loss = Some(alpha_loss);
        }
    }

    // Polyak averaging of the targets.
    let tau = cfg.tau;
    for (t, p) in state.targets.iter_mut().zip(&state.critics) {
        *t = p.clone() * tau + t.clone() * (1.0 - tau);
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SacConfig {
        let mut c: SacConfig = toml::from_str("total_steps = 10").unwrap();
        c.hidden = vec![8, 8];
        c.batch_size = 4;
        c
    }

    fn one_batch(terminated: [f32; 4]) -> Batch {
        Batch {
            size: 4,
            obs: vec![0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8],
            actions: vec![0.5, -0.5, 0.1, 0.9],
            rewards: vec![1.0, -1.0, 0.5, 2.0],
            next_obs: vec![0.2, 0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.9],
            terminated: terminated.to_vec(),
        }
    }

    /// Polyak: after one update the targets are τ·Q_new + (1 − τ)·Q_old elementwise.
    #[test]
    fn targets_move_by_tau() {
        let d = Device::flex();
        let c = cfg();
        let shapes = SacShapes::new(2, (&[-1.0], &[1.0]), &c);
        let host = HostSacState::init(&shapes, &c, 7);
        let mut state = host.upload(&shapes, &d).unwrap();
        let noise = UpdateNoise::draw(0, 1, 4, 1, 0);
        update(&mut state, &shapes, &c, &one_batch([0.0; 4]), &noise, &d);
        let after = state.download().unwrap();
        assert_ne!(after.critics, host.critics, "the critics must move");
        for ((t, q), q0) in after.targets.iter().zip(&after.critics).zip(&host.critics) {
            for ((t, q), q0) in t.iter().zip(q).zip(q0) {
                let expect = c.tau as f32 * q + (1.0 - c.tau as f32) * q0;
                assert!((t - expect).abs() < 1e-6);
            }
        }
        assert_eq!(after.actor, host.actor, "no policy update was asked for");
    }

    /// The critic's regression target, recomputed on the host from the same networks and noise:
    /// a terminated transition's target is its reward alone; a non-terminated (including a
    /// truncated) one bootstraps from the next state. Checked through the critic loss, which
    /// with the critics' own values is a function of the targets alone.
    #[test]
    fn critic_targets_bootstrap_unless_terminated() {
        let d = Device::flex();
        let c = cfg();
        let shapes = SacShapes::new(2, (&[-1.0], &[1.0]), &c);
        let host = HostSacState::init(&shapes, &c, 3);
        let noise = UpdateNoise::draw(5, 9, 4, 1, 0);
        let losses = |term: [f32; 4]| {
            let mut state = host.upload(&shapes, &d).unwrap();
            let s = update(&mut state, &shapes, &c, &one_batch(term), &noise, &d);
            read_one(&s.qf1_loss).unwrap() as f64
        };
        // Host recomputation.
        let batch = one_batch([1.0, 0.0, 1.0, 0.0]);
        let actor = HostActor {
            shape: shapes.actor.clone(),
            params: host.actor.clone(),
            map: shapes.map.clone(),
            bounds: shapes.bounds,
        };
        let n = host.targets.len() / 2;
        let mut expected = 0.0;
        for i in 0..4 {
            let next: Vec<f64> = batch.next_obs[2 * i..2 * i + 2]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let eps = noise.target[i];
            let a = actor.sample_action(&next, &[eps]);
            // log π(a|s′) from the actor's heads, as the module doc writes it.
            let x: Vec<f32> = next.iter().map(|&v| v as f32).collect();
            let heads = shapes.actor.forward_host(&host.actor, &x);
            let log_std = -5.0 + 3.5 * (heads[1][0].tanh() as f64 + 1.0);
            let y = a[0] as f64;
            let logp = -0.5 * (eps as f64).powi(2)
                - log_std
                - 0.5 * (2.0 * std::f64::consts::PI).ln()
                - (1.0 - y * y + 1e-6).ln();
            let xa = [x[0], x[1], a[0]];
            let q1t = shapes.critic.forward_host(&host.targets[..n], &xa)[0][0] as f64;
            let q2t = shapes.critic.forward_host(&host.targets[n..], &xa)[0][0] as f64;
            let alpha = (host.log_alpha as f64).exp();
            let target = batch.rewards[i] as f64
                + (1.0 - batch.terminated[i] as f64) * c.gamma * (q1t.min(q2t) - alpha * logp);
            let sa = [batch.obs[2 * i], batch.obs[2 * i + 1], batch.actions[i]];
            let q1 = shapes.critic.forward_host(&host.critics[..n], &sa)[0][0] as f64;
            expected += (q1 - target).powi(2) / 4.0;
        }
        let got = losses([1.0, 0.0, 1.0, 0.0]);
        assert!(
            (got - expected).abs() < 1e-4 * expected.max(1.0),
            "{got} vs {expected}"
        );
        assert!(
            (losses([0.0; 4]) - got).abs() > 1e-3,
            "termination must change the target"
        );
    }

    #[test]
    fn policy_updates_move_the_actor_and_alpha() {
        let d = Device::flex();
        let c = cfg();
        let shapes = SacShapes::new(2, (&[-1.0], &[1.0]), &c);
        let host = HostSacState::init(&shapes, &c, 1);
        let mut state = host.upload(&shapes, &d).unwrap();
        let noise = UpdateNoise::draw(0, 2, 4, 1, 2);
        let s = update(&mut state, &shapes, &c, &one_batch([0.0; 4]), &noise, &d);
        let after = state.download().unwrap();
        assert_ne!(after.actor, host.actor);
        assert_ne!(after.log_alpha, host.log_alpha);
        assert_eq!(
            (after.actor_steps, after.alpha_steps, after.critic_steps),
            (2, 2, 1)
        );
        assert!(read_one(&s.entropy.unwrap()).unwrap().is_finite());
    }
}
