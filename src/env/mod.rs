//! MuJoCo locomotion environments that step exactly as Gymnasium's v4 ones (Walker2d, Hopper,
//! HalfCheetah, Ant, Humanoid) with their default kwargs, on MuJoCo 3.17.0 through mujoco-rs.
//!
//! The specification is Gymnasium 1.4.0's `*_v4.py` (installed beside the models by
//! scripts/install_mujoco.sh, under third_party/mujoco/spec/); tests/fixtures/env/ holds
//! Gymnasium's own rollouts, which `lmtrain env replay` and the integration tests reproduce to
//! within 1e-9 on every value.
//!
//! Layout: [`Env`] is the interface later code uses; [`sim`] wraps MuJoCo (loading, reset, the
//! `do_simulation` step, instability checks); each environment is a small [`task::Task`]; the
//! generic [`locomotion::Locomotion`] joins the two and adds the 1000-step time limit.

pub mod ant;
pub mod assets;
pub mod bench;
pub mod cli;
pub mod half_cheetah;
pub mod hopper;
pub mod humanoid;
pub mod locomotion;
pub mod noise;
pub mod numpy;
pub mod replay;
pub mod sim;
pub mod task;
pub mod walker2d;

use anyhow::{bail, Result};

pub use sim::StepError;

/// Gymnasium's `TimeLimit` for all five environments (`max_episode_steps` in their registration).
pub const MAX_EPISODE_STEPS: usize = 1000;

/// The Gymnasium ids this module implements.
pub const ENV_IDS: [&str; 5] = [
    "Walker2d-v4",
    "Hopper-v4",
    "HalfCheetah-v4",
    "Ant-v4",
    "Humanoid-v4",
];

/// The reward's parts, common to all five environments (terms an environment lacks are 0):
/// `reward = forward + healthy - ctrl_cost - contact_cost`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RewardTerms {
    /// The weighted forward velocity (x; the centre of mass for Humanoid).
    pub forward: f64,
    /// The healthy (survival) reward.
    pub healthy: f64,
    /// The control cost, already weighted.
    pub ctrl_cost: f64,
    /// The contact cost (0 in v4 with its default `use_contact_forces=False`).
    pub contact_cost: f64,
}

/// One `step`'s outcome, as Gymnasium's `TimeLimit(env).step` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub obs: Vec<f64>,
    pub reward: f64,
    /// The robot is unhealthy (fell); never set by HalfCheetah.
    pub terminated: bool,
    /// The 1000-step time limit was reached.
    pub truncated: bool,
    pub terms: RewardTerms,
    /// Gymnasium's `info` dict for this environment, with its key names and values.
    pub info: Vec<(&'static str, f64)>,
}

/// The joint state (MuJoCo's `qpos`, `qvel`): what fixes an initial condition.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub qpos: Vec<f64>,
    pub qvel: Vec<f64>,
}

/// A Gymnasium v4 MuJoCo environment with its time limit.
///
/// Actions are `f32` because Gymnasium's action space is a float32 `Box` and the control cost is
/// computed in float32 from the action itself, as NumPy does.
pub trait Env: Send {
    /// The Gymnasium id, e.g. `"Walker2d-v4"`.
    fn id(&self) -> &'static str;
    fn obs_dim(&self) -> usize;
    fn action_dim(&self) -> usize;
    /// The action space's bounds (the actuators' control ranges), low then high.
    fn action_bounds(&self) -> (&[f32], &[f32]);
    /// Draws a start state with the v4 noise distribution from `seed` and returns the first
    /// observation. Resets the time limit.
    fn reset(&mut self, seed: u64) -> Result<Vec<f64>>;
    /// Starts an episode from a given joint state, as Gymnasium's reset does after drawing the
    /// noise (`mj_resetData`, set qpos/qvel, `mj_forward`). Resets the time limit.
    fn reset_to(&mut self, state: &State) -> Result<Vec<f64>>;
    /// Applies `action` for one environment step (frame_skip MuJoCo steps). Like Gymnasium,
    /// stepping on after `terminated` is allowed.
    fn step(&mut self, action: &[f32]) -> Result<Step, StepError>;
    /// The current joint state.
    fn state(&self) -> State;
    /// Sets the joint state in the middle of an episode (`MujocoEnv.set_state`: qpos, qvel, then
    /// `mj_forward`), keeping the step count; returns the observation.
    fn set_state(&mut self, state: &State) -> Result<Vec<f64>>;
}

/// Builds the environment with Gymnasium id `id` (e.g. `"Walker2d-v4"`), loading its model file
/// from [`assets::model_dir`].
pub fn make(id: &str) -> Result<Box<dyn Env>> {
    use locomotion::Locomotion;
    Ok(match id {
        "Walker2d-v4" => Box::new(Locomotion::new(walker2d::Walker2d)?),
        "Hopper-v4" => Box::new(Locomotion::new(hopper::Hopper)?),
        "HalfCheetah-v4" => Box::new(Locomotion::new(half_cheetah::HalfCheetah)?),
        "Ant-v4" => Box::new(Locomotion::new(ant::Ant::default())?),
        "Humanoid-v4" => Box::new(Locomotion::new(humanoid::Humanoid)?),
        other => bail!(
            "unknown environment {other:?}; lmtrain has Gymnasium's {}",
            ENV_IDS.join(", ")
        ),
    })
}
