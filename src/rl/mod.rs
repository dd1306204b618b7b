//! Reinforcement learning for the behaviour-cloning experiments: soft actor-critic (SAC)
//! experts for the MuJoCo locomotion tasks, their shipped files, and expert datasets.
//!
//! SAC is its own program (an environment loop, an actor, twin critics with targets), not a
//! supervised [`crate::train::Task`]: [`train_loop`] follows CleanRL's
//! `sac_continuous_action.py` and reuses the project's device choice, AdamW (as Adam),
//! checkpoint writing, run log and metrics file.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod collect;
pub mod environment;
pub mod evaluate;
pub mod expert_file;
pub mod mlp;
pub mod policy;
pub mod replay_buffer;
pub mod sac;
pub mod train_loop;
