//! Behaviour cloning through the same trainer as the language model (`[task] kind = "bc"`):
//! a policy regressed onto an expert's actions (ℓ_BC, Block et al. 2024), its raw and EMA weights
//! evaluated in closed loop by rollouts.

pub mod dataset;
pub mod landscape;
pub mod linear;
pub mod minibatch;
pub mod mlp;
pub mod normalize;
pub mod policy;
pub mod rollout;
pub mod rollout_cmd;
pub mod rollout_lockstep;
pub mod run;
pub mod task;
pub mod transformer;
