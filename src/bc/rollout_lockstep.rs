//! Rollouts of the transformer policy, every episode in lockstep: each step, one batched forward
//! of the live episodes' windows `[live, history, obs_dim]` on the device (the action is the last
//! position's), then the environments step in parallel on the host. A host-side re-statement of
//! the GPT would duplicate the model; one forward per step for all episodes costs about what one
//! per episode would cost the MLP.
//!
//! The window is the last `history` normalised observations, zero-padded on the left at the
//! episode's start, exactly as [`super::task::Pairs::windows`] builds training windows.

use std::collections::VecDeque;

use anyhow::{anyhow, Result};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::rollout::{advance, start, Rollout, RolloutSpec};
use super::transformer::TransformerPolicy;
use crate::model::params::upload;
use crate::rl::environment::Environment;

/// One live episode.
struct Live {
    env: Box<dyn Environment>,
    obs: Vec<f64>,
    /// Normalised observations, oldest first, at most `history`.
    window: VecDeque<Vec<f32>>,
    record: Rollout,
    done: bool,
}

/// The policy with `params` rolled out from every seed of `spec`, in seed order.
pub fn rollouts(
    spec: &RolloutSpec,
    policy: &TransformerPolicy,
    params: &[Vec<f32>],
    device: &Device,
) -> Result<Vec<Rollout>> {
    let p = upload(policy.specs(), params, device)?;
    let (h, d) = (policy.history, policy.obs_dim);
    let a = policy.map.scale.len();
    let mut eps = spec
        .seeds
        .iter()
        .map(|&seed| {
            let (env, obs, record) = start(spec, seed)?;
            Ok(Live {
                env,
                obs,
                window: VecDeque::with_capacity(h),
                record,
                done: spec.horizon == 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    loop {
        let live: Vec<usize> = (0..eps.len()).filter(|&i| !eps[i].done).collect();
        if live.is_empty() {
            break;
        }
        let mut x = Vec::with_capacity(live.len() * h * d);
        for &i in &live {
            let e = &mut eps[i];
            if e.window.len() == h {
                e.window.pop_front();
            }
            e.window
                .push_back(spec.norm.apply(e.obs.iter().map(|&v| v as f32)));
            x.extend(std::iter::repeat_n(0.0f32, (h - e.window.len()) * d));
            e.window.iter().for_each(|o| x.extend_from_slice(o));
        }
        let n = live.len();
        let obs = Tensor::<3>::from_data(TensorData::new(x, [n, h, d]), device);
        let actions: Vec<f32> = policy
            .forward(&p, obs, device)
            .narrow(1, h - 1, 1)
            .to_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("cannot read the policy's actions: {e:?}"))?;
        let mut stepping: Vec<(&mut Live, &[f32])> = Vec::with_capacity(n);
        let mut rest = actions.chunks_exact(a);
        for (i, e) in eps.iter_mut().enumerate() {
            if live.binary_search(&i).is_ok() {
                stepping.push((e, rest.next().unwrap_or_default()));
            }
        }
        stepping.par_iter_mut().for_each(|(e, action)| {
            match advance(spec, e.env.as_mut(), &e.obs, action, &mut e.record) {
                Some(next) => e.obs = next,
                None => e.done = true,
            }
        });
    }
    Ok(eps.into_iter().map(|e| e.record).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bc::normalize::ObsNorm;
    use crate::bc::task::Pairs;
    use crate::config::{PolicyConfig, PolicyKind};
    use crate::rl::environment::{self, PointMass};
    use crate::rl::policy::ActionMap;

    /// The lockstep rollout (3 episodes batched, windows kept in a ring) takes the same actions as
    /// a plain loop that builds each step's window with [`Pairs::windows`] (the training
    /// windows) from the trajectory so far and runs the policy on it alone: same returns and
    /// lengths. A window padded on the wrong side, in the wrong order, or reaching past the
    /// episode's start changes the actions and so the returns.
    #[test]
    fn lockstep_rollouts_act_on_the_training_windows() {
        let d = Device::flex();
        let cfg = PolicyConfig {
            kind: PolicyKind::Transformer,
            n_layer: Some(1),
            n_head: Some(2),
            n_embd: Some(8),
            history: Some(3),
            ..Default::default()
        };
        let policy = TransformerPolicy::new(&cfg, 1, ActionMap::from_bounds(&[-1.0], &[1.0]));
        // Large weights, so that every position of the window moves the action.
        let params: Vec<Vec<f32>> = policy
            .init(7)
            .into_iter()
            .map(|v| v.into_iter().map(|x| x * 40.0).collect())
            .collect();
        let spec = RolloutSpec {
            env_id: PointMass::ID.into(),
            seeds: vec![3, 4, 5],
            horizon: 12,
            norm: ObsNorm {
                mean: vec![0.1],
                std: vec![0.5],
            },
            expert: None,
        };
        let got = rollouts(&spec, &policy, &params, &d).unwrap();
        let p = upload(policy.specs(), &params, &d).unwrap();
        for (seed, r) in spec.seeds.iter().zip(&got) {
            let mut env = environment::make(PointMass::ID).unwrap();
            let mut obs = env.reset(*seed).unwrap();
            let mut pairs = Pairs {
                obs: Vec::new(),
                actions: Vec::new(),
                t: Vec::new(),
                obs_dim: 1,
                action_dim: 1,
            };
            let (mut ret, mut len) = (0.0, 0);
            while len < spec.horizon {
                pairs
                    .obs
                    .extend(spec.norm.apply(obs.iter().map(|&v| v as f32)));
                pairs.actions.push(0.0);
                pairs.t.push(len as u32);
                let w = pairs.windows(std::iter::once(len), 3, &d);
                let a: Vec<f32> = policy
                    .forward(&p, w.obs, &d)
                    .narrow(1, 2, 1)
                    .to_data()
                    .try_to_vec()
                    .unwrap();
                let o = env.step(&a).unwrap();
                ret += o.reward;
                len += 1;
                if o.terminated || o.truncated {
                    break;
                }
                obs = o.obs;
            }
            assert_eq!(r.length, len, "seed {seed}");
            assert!(
                (r.ret - ret).abs() <= 1e-5 * ret.abs().max(1e-3),
                "seed {seed}: lockstep {} vs windows {ret}",
                r.ret
            );
        }
        // The policy is not constant: the episodes' returns differ.
        assert!(
            got.iter().any(|r| (r.ret - got[0].ret).abs() > 1e-6),
            "{got:?}"
        );
    }
}
