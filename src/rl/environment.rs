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

/// A probe with a known optimum that exercises bootstrapping and truncation: a point on a line,
/// `x' = x + 0.1·a` with `a ∈ [−1, 1]`, reward `−x'²`, episodes truncated after
/// [`PointMass::HORIZON`] steps, never terminated; the start is uniform in [−1, 1].
///
/// The best policy moves towards 0 at full speed, which only a critic that bootstraps through
/// many steps learns to value (its immediate reward differs little from standing still). Its
/// expected return is about −0.8 (computed in the tests); doing nothing returns about −16.7.
#[derive(Clone, Debug, Default)]
pub struct PointMass {
    x: f64,
    t: usize,
}

impl PointMass {
    pub const ID: &'static str = "PointMass-v0";
    pub const HORIZON: usize = 50;
    /// Step size per unit action.
    pub const SPEED: f64 = 0.1;
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

    /// The return of the bang-bang policy a = −sign(x), averaged over starts: the figure the
    /// probe's documentation and the SAC learning test quote.
    pub fn optimal_return(starts: usize) -> f64 {
        let mut total = 0.0;
        for k in 0..starts {
            let mut env = PointMass::default();
            let mut x = env.reset(k as u64).unwrap()[0];
            loop {
                let a = (-x / PointMass::SPEED).clamp(-1.0, 1.0) as f32;
                let o = env.step(&[a]).unwrap();
                total += o.reward;
                x = o.obs[0];
                if o.truncated {
                    break;
                }
            }
        }
        total / starts as f64
    }

    #[test]
    fn probe_optimum_and_idle_returns() {
        let best = optimal_return(2000);
        assert!((-1.2..-0.5).contains(&best), "optimal return {best}");
        let mut env = PointMass::default();
        let mut idle = 0.0;
        for k in 0..2000u64 {
            env.reset(k).unwrap();
            for _ in 0..PointMass::HORIZON {
                idle += env.step(&[0.0]).unwrap().reward;
            }
        }
        idle /= 2000.0;
        assert!((-18.0..-15.5).contains(&idle), "idle return {idle}");
    }
}
