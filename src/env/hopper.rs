//! Hopper-v4 (gymnasium/envs/mujoco/hopper_v4.py) with its default kwargs: a one-legged planar
//! hopper; reward = x velocity + 1 (healthy) - 1e-3 * |action|²; it falls when any of
//! state_vector()[2:] leaves (-100, 100), the height drops to 0.7 or the angle leaves (-0.2, 0.2).

use super::noise::VelNoise;
use super::sim::Sim;
use super::task::{
    forward_healthy_outcome, push_clipped_velocities, push_positions, root_x, Outcome, Task,
    Transition,
};

pub struct Hopper;

const FORWARD_WEIGHT: f64 = 1.0;
const CTRL_COST_WEIGHT: f64 = 1e-3;
const HEALTHY_REWARD: f64 = 1.0;

impl Task for Hopper {
    const ID: &'static str = "Hopper-v4";
    const XML: &'static str = "hopper.xml";
    const FRAME_SKIP: usize = 4;
    const OBS_DIM: usize = 11;
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
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let (z, angle) = (qpos[1], qpos[2]);
        // state_vector() = [qpos, qvel]; [2:] skips x and z.
        let healthy_state = qpos[2..]
            .iter()
            .chain(qvel)
            .all(|&s| -100.0 < s && s < 100.0);
        let healthy_z = 0.7 < z && z < f64::INFINITY;
        let healthy_angle = -0.2 < angle && angle < 0.2;
        forward_healthy_outcome(
            t,
            FORWARD_WEIGHT,
            CTRL_COST_WEIGHT,
            HEALTHY_REWARD,
            !(healthy_state && healthy_z && healthy_angle),
        )
    }
}
