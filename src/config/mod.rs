//! User TOML ↔ typed structs. Validation lives here, and nothing else reads TOML.
//!
//! Every struct is `deny_unknown_fields`: a misspelled key is an error that names the file,
//! the key and what is allowed, never a silently ignored setting.

mod expert;
mod load;
pub mod ranges;
mod schema;

pub use expert::{
    EnvConfig, ExpertConfig, SacCheckpointConfig, SacConfig, SacEvalConfig, SacTrainConfig,
};
pub use load::{load_config, parse_override, ConfigSource, ResolvedConfig};
pub use schema::*;
