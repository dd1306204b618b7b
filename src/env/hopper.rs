//! Hopper-v4 (gymnasium/envs/mujoco/hopper_v4.py) with its default kwargs: a one-legged planar
//! hopper; reward = x velocity + 1 (healthy) - 1e-3 * |action|²; it falls when any of
//! state_vector()[2:] leaves (-100, 100), the height drops to 0.7 or the angle leaves (-0.2, 0.2).

use super::noise::VelNoise;
use super::numpy::weighted_square_sum_f32;
use super::sim::Sim;
use super::task::{push_clipped_velocities, push_positions, root_x, Outcome, Task, Transition};
use super::RewardTerms;

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
        let x_velocity = (t.after[0] - t.before[0]) / t.dt;
        let forward = FORWARD_WEIGHT * x_velocity;
        let ctrl_cost = weighted_square_sum_f32(CTRL_COST_WEIGHT, t.action);
        let healthy = HEALTHY_REWARD;
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let (z, angle) = (qpos[1], qpos[2]);
        // state_vector() = [qpos, qvel]; [2:] skips x and z.
        let healthy_state = qpos[2..]
            .iter()
            .chain(qvel)
            .all(|&s| -100.0 < s && s < 100.0);
        let healthy_z = 0.7 < z && z < f64::INFINITY;
        let healthy_angle = -0.2 < angle && angle < 0.2;
        Outcome {
            reward: (forward + healthy) - ctrl_cost,
            terms: RewardTerms {
                forward,
                healthy,
                ctrl_cost,
                contact_cost: 0.0,
            },
            unhealthy: !(healthy_state && healthy_z && healthy_angle),
            info: vec![("x_position", t.after[0]), ("x_velocity", x_velocity)],
        }
    }
}
