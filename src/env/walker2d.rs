//! Walker2d-v4 (gymnasium/envs/mujoco/walker2d_v4.py) with its default kwargs: a planar biped;
//! reward = x velocity + 1 (healthy) - 1e-3 * |action|²; it falls when the torso's height leaves
//! (0.8, 2.0) or its angle leaves (-1, 1).

use super::noise::VelNoise;
use super::sim::Sim;
use super::task::{
    forward_healthy_outcome, push_clipped_velocities, push_positions, root_x, Outcome, Task,
    Transition,
};

pub struct Walker2d;

/// `forward_reward_weight`, `ctrl_cost_weight`, `healthy_reward`.
const FORWARD_WEIGHT: f64 = 1.0;
const CTRL_COST_WEIGHT: f64 = 1e-3;
const HEALTHY_REWARD: f64 = 1.0;

impl Task for Walker2d {
    const ID: &'static str = "Walker2d-v4";
    const XML: &'static str = "walker2d.xml";
    const FRAME_SKIP: usize = 4;
    const OBS_DIM: usize = 17;
    const NOISE_SCALE: f64 = 5e-3;
    const VEL_NOISE: VelNoise = VelNoise::Uniform;

    fn position(&self, sim: &Sim) -> [f64; 2] {
        root_x(sim)
    }

    fn observe(&self, sim: &Sim, out: &mut Vec<f64>) {
        push_positions(sim, 1, out);
        push_clipped_velocities(sim, out);
    }

    fn outcome(&self, sim: &Sim, t: &Transition) -> Outcome {
        let (z, angle) = (sim.qpos()[1], sim.qpos()[2]);
        let is_healthy = 0.8 < z && z < 2.0 && -1.0 < angle && angle < 1.0;
        forward_healthy_outcome(
            t,
            FORWARD_WEIGHT,
            CTRL_COST_WEIGHT,
            HEALTHY_REWARD,
            !is_healthy,
        )
    }
}
