//! User TOML ↔ typed structs. Validation lives here, and nothing else reads TOML.
//!
//! Every struct is `deny_unknown_fields`: a misspelled key is an error that names the file,
//! the key and what is allowed, never a silently ignored setting.

mod bc;
mod expert;
mod load;
pub mod ranges;
mod schema;
mod task;

pub use bc::{
    BcConfig, BcDataConfig, BcEvalConfig, LinearConfig, PolicyActivation, PolicyConfig, PolicyKind,
};
pub use expert::{
    EnvConfig, ExpertConfig, SacCheckpointConfig, SacConfig, SacEvalConfig, SacTrainConfig,
};
pub use load::{load_config, parse_override, resumable_text, ConfigSource, ResolvedConfig};
pub use schema::*;
pub use task::{kind_of_text, task_kind, TaskConfig, TaskKind};
