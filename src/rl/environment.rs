//! What SAC needs of an environment, implemented by lmtrain's MuJoCo environments (feature
//! `mujoco`) and by a probe with a known optimum that needs no MuJoCo (for tests).

use anyhow::{bail, Result};

/// One step's outcome, in Gymnasium's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub obs: Vec<f64>,
    pub reward: f64,
    /// The episode ended in a terminal state: no bootstrap from `obs`.
    pub terminated: bool,
    /// The time limit ended the episode: bootstrap from `obs`, the real final observation.
    pub truncated: bool,
}

/// A continuous-control environment with a time limit.
pub trait Environment: Send {
    fn id(&self) -> &str;
    fn obs_dim(&self) -> usize;
    fn action_dim(&self) -> usize;
    /// Action bounds, low then high.
    fn action_bounds(&self) -> (Vec<f32>, Vec<f32>);
    /// Starts an episode from a start state drawn from `seed`; returns the first observation.
    fn reset(&mut self, seed: u64) -> Result<Vec<f64>>;
    /// One step. A MuJoCo instability is an error (the caller decides what to do with the
    /// episode).
    fn step(&mut self, action: &[f32]) -> Result<Outcome>;
    /// The joint state (qpos, qvel) where the environment has one (MuJoCo), for records.
    fn joint_state(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        None
    }
}

/// Builds an environment by id: the five Gymnasium v4 MuJoCo ids (with the `mujoco` feature) or
/// [`PointMass::ID`].
pub fn make(id: &str) -> Result<Box<dyn Environment>> {
    if id == PointMass::ID {
        return Ok(Box::new(PointMass::default()));
    }
    #[cfg(feature = "mujoco")]
    {
        Ok(Box::new(MujocoEnv(crate::env::make(id)?)))
    }
    #[cfg(not(feature = "mujoco"))]
    {
        bail!("environment {id:?} needs the MuJoCo environments: build lmtrain with its default features (scripts/setup.sh)")
    }
}

#[cfg(feature = "mujoco")]
struct MujocoEnv(Box<dyn crate::env::Env>);

#[cfg(feature = "mujoco")]
impl Environment for MujocoEnv {
    fn id(&self) -> &str {
        self.0.id()
    }
    fn obs_dim(&self) -> usize {
        self.0.obs_dim()
    }
    fn action_dim(&self) -> usize {
        self.0.action_dim()
    }
    fn action_bounds(&self) -> (Vec<f32>, Vec<f32>) {
        let (l, h) = self.0.action_bounds();
        (l.to_vec(), h.to_vec())
    }
    fn reset(&mut self, seed: u64) -> Result<Vec<f64>> {
        self.0.reset(seed)
    }
    fn step(&mut self, action: &[f32]) -> Result<Outcome> {
        let s = self.0.step(action)?;
        Ok(Outcome {
            obs: s.obs,
            reward: s.reward,
            terminated: s.terminated,
            truncated: s.truncated,
        })
    }
    fn joint_state(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        let s = self.0.state();
        Some((s.qpos, s.qvel))
    }
}

/// A probe with a known optimum: a point on a line, `x' = x + 0.5·a` with `a ∈ [−1, 1]`, reward
/// `−x'²`, episodes truncated after [`PointMass::HORIZON`] steps, never terminated; the start is
/// uniform in [−1, 1].
///
/// The best policy moves towards 0 at full speed and then lands on it with the exact interior
/// action `a = −x/0.5`; it returns about −0.04 (computed in the tests). Bang-bang control
/// (`a = −sign x`) overshoots for ever and returns about −4; doing nothing returns about −16.7.
/// The interior action is what a SAC without the tanh log-Jacobian fails to learn: it rewards
/// saturating σ, and a saturated squash passes no gradient to the mean.
#[derive(Clone, Debug, Default)]
pub struct PointMass {
    x: f64,
    t: usize,
}

impl PointMass {
    pub const ID: &'static str = "PointMass-v0";
    pub const HORIZON: usize = 50;
    /// Step size per unit action.
    pub const SPEED: f64 = 0.5;
}

impl Environment for PointMass {
    fn id(&self) -> &str {
        Self::ID
    }
    fn obs_dim(&self) -> usize {
        1
    }
    fn action_dim(&self) -> usize {
        1
    }
    fn action_bounds(&self) -> (Vec<f32>, Vec<f32>) {
        (vec![-1.0], vec![1.0])
    }
    fn reset(&mut self, seed: u64) -> Result<Vec<f64>> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        self.x = rng.random_range(-1.0..1.0);
        self.t = 0;
        Ok(vec![self.x])
    }
    fn step(&mut self, action: &[f32]) -> Result<Outcome> {
        let a = match action {
            [a] if a.is_finite() => (*a as f64).clamp(-1.0, 1.0),
            _ => bail!("{}: expected one finite action, got {action:?}", Self::ID),
        };
        self.x += Self::SPEED * a;
        self.t += 1;
        Ok(Outcome {
            obs: vec![self.x],
            reward: -self.x * self.x,
            terminated: false,
            truncated: self.t >= Self::HORIZON,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The average return of `policy` over 2,000 starts.
    fn average_return(policy: impl Fn(f64) -> f32) -> f64 {
        let mut total = 0.0;
        for k in 0..2000u64 {
            let mut env = PointMass::default();
            let mut x = env.reset(k).unwrap()[0];
            loop {
                let o = env.step(&[policy(x)]).unwrap();
                total += o.reward;
                x = o.obs[0];
                if o.truncated {
                    break;
                }
            }
        }
        total / 2000.0
    }

    /// The figures the probe's documentation and the SAC learning test quote.
    #[test]
    fn probe_optimum_bang_bang_and_idle_returns() {
        let best = average_return(|x| (-x / PointMass::SPEED).clamp(-1.0, 1.0) as f32);
        assert!((-0.06..-0.02).contains(&best), "optimal return {best}");
        let bang = average_return(|x| if x > 0.0 { -1.0 } else { 1.0 });
        assert!((-5.0..-3.0).contains(&bang), "bang-bang return {bang}");
        let idle = average_return(|_| 0.0);
        assert!((-18.0..-15.5).contains(&idle), "idle return {idle}");
    }
}
