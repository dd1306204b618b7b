//! `[task] kind`: which task the main command trains. Read before the rest of the file, because
//! each task has its own schema (a BC config has no `[model]` or `[tokenizer]`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The task a config trains.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Language modelling: next-token cross-entropy on text shards (the default).
    #[default]
    Lm,
    /// Behaviour cloning: a policy regressed onto an expert's actions, evaluated by rollouts.
    Bc,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Lm => "lm",
            TaskKind::Bc => "bc",
        }
    }
}

/// The `[task]` table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    #[serde(default)]
    pub kind: TaskKind,
}

/// The `[task] kind` of a config file once `--set task.kind=…` (if any) is applied; `lm` when the
/// file has no `[task]` table. Errors name the file and the allowed kinds.
pub fn task_kind(file: &Path, overrides: &[String]) -> Result<TaskKind> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read config file {}: check the path (shipped configs are in configs/)",
            file.display()
        )
    })?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", file.display()))?;
    let mut kind = match table.get("task") {
        None => None,
        Some(toml::Value::Table(t)) => t.get("kind").cloned(),
        Some(_) => bail!(
            "in config file {}: `task` must be a table ([task])",
            file.display()
        ),
    };
    for spec in overrides {
        let (key, value) = super::load::parse_override(spec)?;
        if key == "task.kind" {
            kind = Some(value);
        }
    }
    match kind {
        None => Ok(TaskKind::Lm),
        Some(toml::Value::String(s)) if s == "lm" => Ok(TaskKind::Lm),
        Some(toml::Value::String(s)) if s == "bc" => Ok(TaskKind::Bc),
        Some(other) => bail!(
            "in config file {}: task.kind = {other} is not a task; write \"lm\" (language modelling) or \"bc\" (behaviour cloning)",
            file.display()
        ),
    }
}

/// The `[task] kind` of a config already resolved to TOML text (a run's `config.toml`, a
/// checkpoint's stored config); `lm` when it has none or cannot be read as TOML.
pub fn kind_of_text(text: &str) -> TaskKind {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("task")?.get("kind")?.as_str().map(str::to_string))
        .map_or(TaskKind::Lm, |k| {
            if k == "bc" {
                TaskKind::Bc
            } else {
                TaskKind::Lm
            }
        })
}
