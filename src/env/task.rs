//! What distinguishes one environment from another: its model file, frame_skip, reset noise,
//! observation, reward and health check — one small implementation per Gymnasium `*_v4.py`.

use anyhow::Result;

use super::noise::VelNoise;
use super::sim::Sim;
use super::RewardTerms;

/// The reward's inputs that the generic step gathers for every environment.
pub struct Transition<'a> {
    /// [`Task::position`] before the step.
    pub before: [f64; 2],
    /// [`Task::position`] after the step.
    pub after: [f64; 2],
    /// `model.opt.timestep * frame_skip`, Gymnasium's `dt`.
    pub dt: f64,
    pub action: &'a [f32],
}

/// The reward, the health flag and Gymnasium's `info` for one step.
pub struct Outcome {
    pub reward: f64,
    pub terms: RewardTerms,
    /// `terminate_when_unhealthy` is true in every v4 default, so this is `terminated`.
    pub unhealthy: bool,
    pub info: Vec<(&'static str, f64)>,
}

/// The reward Hopper, Walker2d and Ant share in their v4 files: forward_weight · ẋ +
/// healthy_reward − ctrl_weight · |action|², summed in Gymnasium's order, with x position and
/// velocity as `info` (Ant replaces the `info`).
pub fn forward_healthy_outcome(
    t: &Transition,
    forward_weight: f64,
    ctrl_weight: f64,
    healthy_reward: f64,
    unhealthy: bool,
) -> Outcome {
    let x_velocity = (t.after[0] - t.before[0]) / t.dt;
    let forward = forward_weight * x_velocity;
    let ctrl_cost = super::numpy::weighted_square_sum_f32(ctrl_weight, t.action);
    // terminate_when_unhealthy=True: the healthy reward is paid on every step.
    let healthy = healthy_reward;
    Outcome {
        reward: (forward + healthy) - ctrl_cost,
        terms: RewardTerms {
            forward,
            healthy,
            ctrl_cost,
            contact_cost: 0.0,
        },
        unhealthy,
        info: vec![("x_position", t.after[0]), ("x_velocity", x_velocity)],
    }
}

pub trait Task: Send + 'static {
    /// The Gymnasium id.
    const ID: &'static str;
    /// The model file in Gymnasium's assets.
    const XML: &'static str;
    const FRAME_SKIP: usize;
    const OBS_DIM: usize;
    /// `reset_noise_scale`.
    const NOISE_SCALE: f64;
    const VEL_NOISE: VelNoise;

    /// Looks up what the task needs in the loaded model (body ids).
    fn bind(&mut self, _sim: &Sim) -> Result<()> {
        Ok(())
    }

    /// The position whose change is the forward velocity: `[x, 0]` from qpos[0] for the planar
    /// robots, the torso's xy for Ant, the centre of mass's xy for Humanoid.
    fn position(&self, sim: &Sim) -> [f64; 2];

    /// Appends the observation (`_get_obs`) to `out`.
    fn observe(&self, sim: &Sim, out: &mut Vec<f64>);

    /// Reward, health and info after a step (`step` minus the simulation).
    fn outcome(&self, sim: &Sim, t: &Transition) -> Outcome;
}

/// The Walker2d/Hopper/HalfCheetah position: qpos[0] (the root's x slide joint).
pub fn root_x(sim: &Sim) -> [f64; 2] {
    [sim.qpos()[0], 0.0]
}

/// qpos without its first `skip` entries (`exclude_current_positions_from_observation`).
pub fn push_positions(sim: &Sim, skip: usize, out: &mut Vec<f64>) {
    out.extend_from_slice(&sim.qpos()[skip..]);
}

/// `np.clip(qvel, -10, 10)`, which Walker2d and Hopper observe.
pub fn push_clipped_velocities(sim: &Sim, out: &mut Vec<f64>) {
    out.extend(sim.qvel().iter().map(|v| v.clamp(-10.0, 10.0)));
}
