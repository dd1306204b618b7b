//! The generic environment: a [`Task`] on a [`Sim`], with Gymnasium's `step` order (position
//! before, simulate, position after, reward, observation) and `TimeLimit`'s 1000 steps.

use anyhow::{Context, Result};

use super::assets::model_path;
use super::noise::Noise;
use super::sim::{Sim, StepError};
use super::task::{Task, Transition};
use super::{Env, State, Step, MAX_EPISODE_STEPS};

pub struct Locomotion<T: Task> {
    task: T,
    sim: Sim,
    /// Gymnasium's `dt`: `model.opt.timestep * frame_skip`.
    dt: f64,
    init_qpos: Vec<f64>,
    low: Vec<f32>,
    high: Vec<f32>,
    /// Steps since the last reset (the time limit's counter).
    episode_step: usize,
}

impl<T: Task> Locomotion<T> {
    /// Loads `T::XML` from the installed models.
    pub fn new(mut task: T) -> Result<Self> {
        let path = model_path(T::XML)?;
        let sim = Sim::load(&path)?;
        task.bind(&sim)
            .with_context(|| format!("{} does not fit {}", path.display(), T::ID))?;
        // The action space is the actuators' ctrlrange as float32 (MujocoEnv._set_action_space).
        let ranges = sim.model().actuator_ctrlrange();
        let low = ranges.iter().map(|r| r[0] as f32).collect();
        let high = ranges.iter().map(|r| r[1] as f32).collect();
        let dt = sim.timestep() * T::FRAME_SKIP as f64;
        let init_qpos = sim.qpos0();
        let mut env = Self {
            task,
            sim,
            dt,
            init_qpos,
            low,
            high,
            episode_step: 0,
        };
        // A valid state before the first reset, as after Gymnasium's constructor.
        let start = State {
            qpos: env.init_qpos.clone(),
            qvel: vec![0.0; env.sim.nv()],
        };
        env.reset_to(&start)?;
        Ok(env)
    }

    fn observation(&self) -> Vec<f64> {
        let mut obs = Vec::with_capacity(T::OBS_DIM);
        self.task.observe(&self.sim, &mut obs);
        obs
    }

    fn check_action(&self, action: &[f32]) -> Result<(), StepError> {
        if action.len() != self.sim.nu() {
            return Err(StepError::ActionLength {
                env: T::ID,
                expected: self.sim.nu(),
                got: action.len(),
            });
        }
        if let Some((index, &value)) = action.iter().enumerate().find(|(_, a)| !a.is_finite()) {
            return Err(StepError::ActionNotFinite {
                env: T::ID,
                index,
                value,
            });
        }
        Ok(())
    }
}

impl<T: Task> Env for Locomotion<T> {
    fn id(&self) -> &'static str {
        T::ID
    }

    fn obs_dim(&self) -> usize {
        T::OBS_DIM
    }

    fn action_dim(&self) -> usize {
        self.sim.nu()
    }

    fn action_bounds(&self) -> (&[f32], &[f32]) {
        (&self.low, &self.high)
    }

    fn reset(&mut self, seed: u64) -> Result<Vec<f64>> {
        let mut noise = Noise::new(seed);
        let qpos = noise.perturb_uniform(&self.init_qpos, T::NOISE_SCALE);
        let qvel = noise.perturb_vel(&vec![0.0; self.sim.nv()], T::NOISE_SCALE, T::VEL_NOISE);
        self.reset_to(&State { qpos, qvel })
    }

    fn reset_to(&mut self, state: &State) -> Result<Vec<f64>> {
        self.sim
            .reset_to(state)
            .with_context(|| format!("cannot reset {}", T::ID))?;
        self.episode_step = 0;
        Ok(self.observation())
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, StepError> {
        self.check_action(action)?;
        let before = self.task.position(&self.sim);
        let unstable = self.sim.step(action, T::FRAME_SKIP);
        self.episode_step += 1;
        if let Some(what) = unstable {
            return Err(StepError::Unstable {
                env: T::ID,
                episode_step: self.episode_step,
                what,
            });
        }
        let after = self.task.position(&self.sim);
        let outcome = self.task.outcome(
            &self.sim,
            &Transition {
                before,
                after,
                dt: self.dt,
                action,
            },
        );
        Ok(Step {
            obs: self.observation(),
            reward: outcome.reward,
            terminated: outcome.unhealthy,
            truncated: self.episode_step >= MAX_EPISODE_STEPS,
            terms: outcome.terms,
            info: outcome.info,
        })
    }

    fn state(&self) -> State {
        State {
            qpos: self.sim.qpos().to_vec(),
            qvel: self.sim.qvel().to_vec(),
        }
    }

    fn set_state(&mut self, state: &State) -> Result<Vec<f64>> {
        self.sim
            .set_state(state)
            .with_context(|| format!("cannot set the state of {}", T::ID))?;
        Ok(self.observation())
    }
}
