//! Ant-v4 (gymnasium/envs/mujoco/ant_v4.py) with its default kwargs: a quadruped;
//! reward = torso x velocity + 1 (healthy) - 0.5 * |action|²; it falls when the state is not
//! finite or the torso's height leaves [0.2, 1.0]. With the default `use_contact_forces=False`
//! the observation is 27 numbers (no contact forces) and the contact cost is not in the reward.

use anyhow::Result;

use super::noise::VelNoise;
use super::sim::Sim;
use super::task::{forward_healthy_outcome, push_positions, Outcome, Task, Transition};

#[derive(Default)]
pub struct Ant {
    /// The body whose frame position (`data.xpos`, Gymnasium's `get_body_com("torso")`) moves.
    torso: usize,
}

const CTRL_COST_WEIGHT: f64 = 0.5;
const HEALTHY_REWARD: f64 = 1.0;

impl Task for Ant {
    const ID: &'static str = "Ant-v4";
    const XML: &'static str = "ant.xml";
    const FRAME_SKIP: usize = 5;
    const OBS_DIM: usize = 27;
    const NOISE_SCALE: f64 = 0.1;
    const VEL_NOISE: VelNoise = VelNoise::Normal;

    fn bind(&mut self, sim: &Sim) -> Result<()> {
        self.torso = sim.body_id("torso")?;
        Ok(())
    }

    fn position(&self, sim: &Sim) -> [f64; 2] {
        // xpos is from the last substep's kinematics (mj_step integrates after computing it);
        // Gymnasium reads the same stale value, so this must not recompute it.
        let p = sim.data().xpos()[self.torso];
        [p[0], p[1]]
    }

    fn observe(&self, sim: &Sim, out: &mut Vec<f64>) {
        push_positions(sim, 2, out);
        out.extend_from_slice(sim.qvel());
    }

    fn outcome(&self, sim: &Sim, t: &Transition) -> Outcome {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let finite = qpos.iter().chain(qvel).all(|s| s.is_finite());
        let is_healthy = finite && 0.2 <= qpos[2] && qpos[2] <= 1.0;
        // forward_reward_weight is not a kwarg of Ant-v4: the forward reward is ẋ itself.
        let mut o = forward_healthy_outcome(t, 1.0, CTRL_COST_WEIGHT, HEALTHY_REWARD, !is_healthy);
        let x_velocity = (t.after[0] - t.before[0]) / t.dt;
        let y_velocity = (t.after[1] - t.before[1]) / t.dt;
        let [x, y] = t.after;
        let (forward, healthy, ctrl_cost) = (o.terms.forward, o.terms.healthy, o.terms.ctrl_cost);
        o.info = vec![
            ("reward_forward", forward),
            ("reward_ctrl", -ctrl_cost),
            ("reward_survive", healthy),
            ("x_position", x),
            ("y_position", y),
            ("distance_from_origin", norm2(x, y)),
            ("x_velocity", x_velocity),
            ("y_velocity", y_velocity),
            ("forward_reward", forward),
        ];
        o
    }
}

/// `np.linalg.norm([x, y], ord=2)`, which is `sqrt(dot(v, v))`; the OpenBLAS `ddot` kernel NumPy
/// used for the fixtures fuses the second product into the first's sum (checked on all of them).
/// The ordinary formula differs by an ulp now and then, harmless but not bit-exact.
pub(crate) fn norm2(x: f64, y: f64) -> f64 {
    y.mul_add(y, x * x).sqrt()
}
