//! HalfCheetah-v4 (gymnasium/envs/mujoco/half_cheetah_v4.py) with its default kwargs: a planar
//! runner that never terminates; reward = x velocity - 0.1 * |action|².

use super::noise::VelNoise;
use super::numpy::weighted_square_sum_f32;
use super::sim::Sim;
use super::task::{push_positions, root_x, Outcome, Task, Transition};
use super::RewardTerms;

pub struct HalfCheetah;

const FORWARD_WEIGHT: f64 = 1.0;
const CTRL_COST_WEIGHT: f64 = 0.1;

impl Task for HalfCheetah {
    const ID: &'static str = "HalfCheetah-v4";
    const XML: &'static str = "half_cheetah.xml";
    const FRAME_SKIP: usize = 5;
    const OBS_DIM: usize = 17;
    const NOISE_SCALE: f64 = 0.1;
    const VEL_NOISE: VelNoise = VelNoise::Normal;

    fn position(&self, sim: &Sim) -> [f64; 2] {
        root_x(sim)
    }

    fn observe(&self, sim: &Sim, out: &mut Vec<f64>) {
        push_positions(sim, 1, out);
        // Unlike Walker2d and Hopper, the velocities are not clipped.
        out.extend_from_slice(sim.qvel());
    }

    fn outcome(&self, _sim: &Sim, t: &Transition) -> Outcome {
        let x_velocity = (t.after[0] - t.before[0]) / t.dt;
        let forward = FORWARD_WEIGHT * x_velocity;
        let ctrl_cost = weighted_square_sum_f32(CTRL_COST_WEIGHT, t.action);
        Outcome {
            reward: forward - ctrl_cost,
            terms: RewardTerms {
                forward,
                healthy: 0.0,
                ctrl_cost,
                contact_cost: 0.0,
            },
            unhealthy: false,
            info: vec![
                ("x_position", t.after[0]),
                ("x_velocity", x_velocity),
                ("reward_run", forward),
                ("reward_ctrl", -ctrl_cost),
            ],
        }
    }
}
