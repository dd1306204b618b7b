//! One MuJoCo simulation: a model loaded from Gymnasium's XML and its data, with the three
//! operations Gymnasium's `MujocoEnv` performs on it, done the same way so that results agree
//! bit for bit:
//! - reset: `mj_resetData`, write qpos/qvel, `mj_forward` (`MujocoEnv.reset` + `set_state`);
//! - step: write ctrl, `mj_step` frame_skip times, then `mj_rnePostConstraint`
//!   (`_step_mujoco_simulation`; the last call fills cfrc_ext, which Humanoid observes);
//! - a simulator instability (a MuJoCo warning such as a bad qacc, which makes `mj_step` reset
//!   the data by itself, or a non-finite state) is returned as a [`StepError`], never hidden
//!   in a reward.

use std::path::Path;
use std::sync::{Arc, Mutex, Once};

use anyhow::{bail, Context, Result};
use mujoco_rs::mujoco_c::{mj_forward, mj_resetData, mj_rnePostConstraint, mj_step};
use mujoco_rs::prelude::{MjData, MjLogMessage, MjModel, MjtLogLevel};

use super::State;

/// Why an environment step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{env}: the action has {got} values but the action space has {expected}")]
    ActionLength {
        env: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{env}: action[{index}] is {value}, not a finite number")]
    ActionNotFinite {
        env: &'static str,
        index: usize,
        value: f32,
    },
    #[error(
        "{env}: simulator instability after {episode_step} steps of the episode: {what} \
         (the state is no longer meaningful; reset the environment)"
    )]
    Unstable {
        env: &'static str,
        episode_step: usize,
        what: String,
    },
}

/// MuJoCo's warning kinds, in `mjtWarning` order (the index into `mjData.warning`).
const WARNINGS: [&str; 7] = [
    "inertia matrix is not positive definite (mjWARN_INERTIA)",
    "contact buffer is full (mjWARN_CONTACTFULL)",
    "constraint buffer is full (mjWARN_CNSTRFULL)",
    "bad qpos, MuJoCo reset the data (mjWARN_BADQPOS)",
    "bad qvel, MuJoCo reset the data (mjWARN_BADQVEL)",
    "bad qacc, MuJoCo reset the data (mjWARN_BADQACC)",
    "bad ctrl (mjWARN_BADCTRL)",
];

/// The text of MuJoCo's latest warning, kept to explain an instability. MuJoCo's default handler
/// would print it and append it to MUJOCO_LOG.TXT in the working directory; this one is quiet,
/// since every warning that matters while stepping becomes a [`StepError`].
static LAST_WARNING: Mutex<String> = Mutex::new(String::new());
static LOG_HANDLER: Once = Once::new();

fn keep_warning(message: &MjLogMessage) {
    if matches!(
        message.level(),
        MjtLogLevel::mjLOG_WARNING | MjtLogLevel::mjLOG_ERROR
    ) {
        if let Ok(mut last) = LAST_WARNING.lock() {
            *last = message.subject().to_string();
        }
    }
}

fn install_log_handler() {
    LOG_HANDLER.call_once(|| {
        // SAFETY: every MuJoCo use in lmtrain goes through Sim::load, which runs this first; the
        // Once makes later callers wait until the handler is in place.
        unsafe { mujoco_rs::prelude::set_log_handler(keep_warning) };
    });
}

/// A loaded model and its simulation data.
pub struct Sim {
    data: MjData<Arc<MjModel>>,
    /// `mjData.warning[*].number` after the last check, to see which warnings a step raised.
    warnings_seen: [i32; 7],
}

impl Sim {
    /// Loads the model file at `path` (one of Gymnasium's XML files).
    pub fn load(path: &Path) -> Result<Self> {
        install_log_handler();
        let model = MjModel::from_xml(path)
            .with_context(|| format!("cannot load MuJoCo model {}", path.display()))?;
        let data = MjData::new(Arc::new(model));
        let mut sim = Self {
            data,
            warnings_seen: [0; 7],
        };
        sim.warnings_seen = sim.warning_counts();
        Ok(sim)
    }

    pub fn model(&self) -> &MjModel {
        self.data.model()
    }

    pub fn data(&self) -> &MjData<Arc<MjModel>> {
        &self.data
    }

    pub fn nq(&self) -> usize {
        self.model().ffi().nq as usize
    }

    pub fn nv(&self) -> usize {
        self.model().ffi().nv as usize
    }

    pub fn nu(&self) -> usize {
        self.model().ffi().nu as usize
    }

    pub fn timestep(&self) -> f64 {
        self.model().ffi().opt.timestep
    }

    /// `model.qpos0`: the model's initial qpos (Gymnasium's `init_qpos`; `init_qvel` is zero).
    pub fn qpos0(&self) -> Vec<f64> {
        let m = self.model().ffi();
        // SAFETY: qpos0 holds nq numbers for the lifetime of the model.
        unsafe { std::slice::from_raw_parts(m.qpos0, m.nq as usize) }.to_vec()
    }

    pub fn qpos(&self) -> &[f64] {
        self.data.qpos()
    }

    pub fn qvel(&self) -> &[f64] {
        self.data.qvel()
    }

    /// Gymnasium's reset of the physics: `mj_resetData`, then `set_state(qpos, qvel)`.
    pub fn reset_to(&mut self, state: &State) -> Result<()> {
        self.check_state_shape(state)?;
        let (m, d) = self.raw();
        // SAFETY: m and d belong together (d was made from m) and stay alive for the call.
        unsafe { mj_resetData(m, d) };
        self.warnings_seen = self.warning_counts();
        self.set_state(state)
    }

    /// Gymnasium's `set_state`: write qpos and qvel, then `mj_forward`.
    pub fn set_state(&mut self, state: &State) -> Result<()> {
        self.check_state_shape(state)?;
        self.data.qpos_mut().copy_from_slice(&state.qpos);
        self.data.qvel_mut().copy_from_slice(&state.qvel);
        let (m, d) = self.raw();
        // SAFETY: as in reset_to.
        unsafe { mj_forward(m, d) };
        Ok(())
    }

    fn check_state_shape(&self, state: &State) -> Result<()> {
        if state.qpos.len() != self.nq() || state.qvel.len() != self.nv() {
            bail!(
                "a state for this model has {} qpos and {} qvel values, not {} and {}",
                self.nq(),
                self.nv(),
                state.qpos.len(),
                state.qvel.len()
            );
        }
        if let Some(x) = state
            .qpos
            .iter()
            .chain(&state.qvel)
            .find(|x| !x.is_finite())
        {
            bail!("the state holds {x}, not a finite number");
        }
        Ok(())
    }

    /// Gymnasium's `do_simulation(ctrl, frame_skip)`. The caller has checked the action's length
    /// and values. Returns a description of the instability, if MuJoCo met one.
    pub fn step(&mut self, action: &[f32], frame_skip: usize) -> Option<String> {
        for (c, a) in self.data.ctrl_mut().iter_mut().zip(action) {
            *c = f64::from(*a);
        }
        let (m, d) = self.raw();
        // SAFETY: as in reset_to.
        unsafe {
            for _ in 0..frame_skip {
                mj_step(m, d);
            }
            mj_rnePostConstraint(m, d);
        }
        self.instability()
    }

    /// A new MuJoCo warning since the last check, or a non-finite qpos/qvel.
    fn instability(&mut self) -> Option<String> {
        let counts = self.warning_counts();
        let raised = (0..WARNINGS.len()).find(|&i| counts[i] > self.warnings_seen[i]);
        self.warnings_seen = counts;
        if let Some(i) = raised {
            let text = LAST_WARNING.lock().map(|s| s.clone()).unwrap_or_default();
            return Some(if text.is_empty() {
                format!("MuJoCo warning: {}", WARNINGS[i])
            } else {
                format!("MuJoCo warning: {} ({text})", WARNINGS[i])
            });
        }
        if self
            .qpos()
            .iter()
            .chain(self.qvel())
            .any(|x| !x.is_finite())
        {
            return Some("the state (qpos/qvel) is not finite".into());
        }
        None
    }

    fn warning_counts(&self) -> [i32; 7] {
        let mut out = [0; 7];
        for (o, w) in out.iter_mut().zip(self.data.warning()) {
            *o = w.number;
        }
        out
    }

    fn raw(
        &mut self,
    ) -> (
        *const mujoco_rs::mujoco_c::mjModel,
        *mut mujoco_rs::mujoco_c::mjData,
    ) {
        let m: *const _ = self.data.model().ffi();
        // SAFETY: the pointer is only handed to MuJoCo functions that expect this data's model.
        let d: *mut _ = unsafe { self.data.ffi_mut() };
        (m, d)
    }

    /// The id of body `name`, or an error naming the model's bodies' problem.
    pub fn body_id(&self, name: &str) -> Result<usize> {
        self.model()
            .name_to_id(mujoco_rs::prelude::MjtObjBase::mjOBJ_BODY, name)
            .with_context(|| format!("the model has no body named {name:?}"))
    }
}
