//! Humanoid-v4 (gymnasium/envs/mujoco/humanoid_v4.py) with its default kwargs: a 3D biped;
//! reward = 1.25 * centre-of-mass x velocity + 5 (healthy) - 0.1 * |ctrl|²; it falls when the
//! torso's height leaves (1.0, 2.0). The 376-number observation is qpos[2:], qvel, cinert, cvel,
//! qfrc_actuator and cfrc_ext (the last filled by `mj_rnePostConstraint` after each step).

use super::noise::VelNoise;
use super::numpy::weighted_square_sum_f64;
use super::sim::Sim;
use super::task::{push_positions, Outcome, Task, Transition};
use super::RewardTerms;

pub struct Humanoid;

const FORWARD_WEIGHT: f64 = 1.25;
const CTRL_COST_WEIGHT: f64 = 0.1;
const HEALTHY_REWARD: f64 = 5.0;

impl Task for Humanoid {
    const ID: &'static str = "Humanoid-v4";
    const XML: &'static str = "humanoid.xml";
    const FRAME_SKIP: usize = 5;
    const OBS_DIM: usize = 376;
    const NOISE_SCALE: f64 = 1e-2;
    const VEL_NOISE: VelNoise = VelNoise::Uniform;

    /// `mass_center`: the mass-weighted mean of the bodies' centres of mass (xipos), x and y.
    fn position(&self, sim: &Sim) -> [f64; 2] {
        let mass = sim.model().body_mass();
        let mut num = [0.0f64; 2];
        for (m, p) in mass.iter().zip(sim.data().xipos()) {
            num[0] += m * p[0];
            num[1] += m * p[1];
        }
        let total: f64 = mass.iter().sum();
        [num[0] / total, num[1] / total]
    }

    fn observe(&self, sim: &Sim, out: &mut Vec<f64>) {
        let d = sim.data();
        push_positions(sim, 2, out);
        out.extend_from_slice(sim.qvel());
        out.extend(d.cinert().iter().flatten());
        out.extend(d.cvel().iter().flatten());
        out.extend_from_slice(d.qfrc_actuator());
        out.extend(d.cfrc_ext().iter().flatten());
    }

    fn outcome(&self, sim: &Sim, t: &Transition) -> Outcome {
        let x_velocity = (t.after[0] - t.before[0]) / t.dt;
        let y_velocity = (t.after[1] - t.before[1]) / t.dt;
        let forward = FORWARD_WEIGHT * x_velocity;
        let healthy = HEALTHY_REWARD;
        // Humanoid's cost is on data.ctrl (float64), not on the float32 action.
        let ctrl_cost = weighted_square_sum_f64(CTRL_COST_WEIGHT, sim.data().ctrl());
        let z = sim.qpos()[2];
        let [x, y] = t.after;
        Outcome {
            reward: (forward + healthy) - ctrl_cost,
            terms: RewardTerms {
                forward,
                healthy,
                ctrl_cost,
                contact_cost: 0.0,
            },
            unhealthy: !(1.0 < z && z < 2.0),
            info: vec![
                ("reward_linvel", forward),
                ("reward_quadctrl", -ctrl_cost),
                ("reward_alive", healthy),
                ("x_position", x),
                ("y_position", y),
                ("distance_from_origin", super::ant::norm2(x, y)),
                ("x_velocity", x_velocity),
                ("y_velocity", y_velocity),
                ("forward_reward", forward),
            ],
        }
    }
}
