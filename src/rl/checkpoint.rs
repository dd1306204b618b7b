//! SAC checkpoints: one safetensors file per save (`checkpoints/sac-<step>.safetensors`) with
//! the actor, both critics, their targets, log α and the three Adam optimizers' moments in f32,
//! and the counters and config in its metadata; the replay buffer goes to a sidecar
//! (`replay-<step>.safetensors`) kept for the newest checkpoint only.
//!
//! A checkpoint without its buffer is what `--refill-buffer` continues from on another machine
//! (a few MB; the projects commits one per environment). Writes are atomic (temporary file,
//! fsync, rename). Format history: docs/checkpoint-format.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::sac::{HostSacState, SacShapes};
use crate::model::{HostParams, ParamSpec};

pub const FORMAT: &str = "lmtrain-sac-checkpoint";
pub const VERSION: u32 = 1;

/// Everything a SAC checkpoint stores besides tensors.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SacCheckpointMeta {
    pub format: String,
    pub version: u32,
    /// Environment steps taken.
    pub step: u64,
    /// Training episodes started (the next one's reset seed derives from it).
    pub episodes: u64,
    pub env: String,
    pub obs_dim: usize,
    pub action_dim: usize,
    /// The resolved config (TOML).
    pub config: String,
    pub actor_steps: u64,
    pub critic_steps: u64,
    pub alpha_steps: u64,
    /// Saved between episodes (the next step resets the environment). Only the final
    /// checkpoint of a run that reached `total_steps` mid-episode is not.
    pub at_episode_boundary: bool,
    /// Returns of the training episodes finished since the last metrics row (that row's
    /// `episode_return` is their mean), so a resumed run logs what an uninterrupted one would.
    pub pending_returns: Vec<f64>,
    /// The run (or one it continues from) once lost its buffer and refilled it.
    pub refilled: bool,
}

/// The checkpoint's file name for a step (zero-padded, so names sort by step).
pub fn file_name(step: u64) -> String {
    format!("sac-{step:09}.safetensors")
}

/// The replay buffer sidecar's name for a step.
pub fn buffer_name(step: u64) -> String {
    format!("replay-{step:09}.safetensors")
}

struct Group<'a> {
    prefix: &'a str,
    specs: &'a [ParamSpec],
    values: &'a HostParams,
}

fn groups<'a>(shapes: &'a SacShapesSpecs, s: &'a HostSacState) -> Vec<Group<'a>> {
    let (a, c) = (&shapes.actor, &shapes.critics);
    vec![
        Group {
            prefix: "",
            specs: a,
            values: &s.actor,
        },
        Group {
            prefix: "",
            specs: c,
            values: &s.critics,
        },
        Group {
            prefix: "target.",
            specs: c,
            values: &s.targets,
        },
        Group {
            prefix: "optim.m.",
            specs: a,
            values: &s.actor_m,
        },
        Group {
            prefix: "optim.v.",
            specs: a,
            values: &s.actor_v,
        },
        Group {
            prefix: "optim.m.",
            specs: c,
            values: &s.critic_m,
        },
        Group {
            prefix: "optim.v.",
            specs: c,
            values: &s.critic_v,
        },
    ]
}

struct SacShapesSpecs {
    actor: Vec<ParamSpec>,
    critics: Vec<ParamSpec>,
}

impl SacShapesSpecs {
    fn of(shapes: &SacShapes) -> Self {
        Self {
            actor: shapes.actor_specs(),
            critics: shapes.critic_specs(),
        }
    }
}

/// Writes a checkpoint atomically into `dir`; returns its path.
pub fn save(
    dir: &Path,
    shapes: &SacShapes,
    state: &HostSacState,
    meta: &SacCheckpointMeta,
) -> Result<PathBuf> {
    let specs = SacShapesSpecs::of(shapes);
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for g in groups(&specs, state) {
        for (spec, v) in g.specs.iter().zip(g.values) {
            owned.push((
                format!("{}{}", g.prefix, spec.name),
                spec.shape.clone(),
                bytemuck::cast_slice(v).to_vec(),
            ));
        }
    }
    for (name, v) in [
        ("log_alpha", state.log_alpha),
        ("optim.m.log_alpha", state.alpha_m),
        ("optim.v.log_alpha", state.alpha_v),
    ] {
        owned.push((name.into(), vec![1], v.to_le_bytes().to_vec()));
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| anyhow!("tensor {name}: {e}"))
        })
        .collect::<Result<_>>()?;
    let mut metadata = HashMap::new();
    metadata.insert("lmtrain".to_string(), serde_json::to_string(meta)?);
    let bytes = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| anyhow!("cannot serialize the SAC checkpoint: {e}"))?;
    let path = dir.join(file_name(meta.step));
    crate::fsutil::write_atomic(&path, &bytes).with_context(|| {
        format!(
            "saving SAC checkpoint {} failed; earlier checkpoints are intact. Free disk space, then resume",
            path.display()
        )
    })?;
    Ok(path)
}

/// Reads only the metadata.
pub fn read_meta(path: &Path) -> Result<SacCheckpointMeta> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read SAC checkpoint {}", path.display()))?;
    meta_from_bytes(path, &bytes)
}

fn meta_from_bytes(path: &Path, bytes: &[u8]) -> Result<SacCheckpointMeta> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        anyhow!("{} is not a readable safetensors file ({e}): the checkpoint is corrupt or truncated; use an earlier one", path.display())
    })?;
    let raw = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("lmtrain"))
        .ok_or_else(|| {
            let is_expert = header
                .metadata()
                .as_ref()
                .and_then(|m| m.get("format"))
                .is_some_and(|f| f == super::expert_file::FORMAT);
            if is_expert {
                anyhow!("{} is an expert file (the actor alone), not a SAC checkpoint: give the run directory or one of its checkpoints/sac-*.safetensors", path.display())
            } else {
                anyhow!("{} is not an lmtrain SAC checkpoint (no `lmtrain` metadata)", path.display())
            }
        })?;
    let value: serde_json::Value = serde_json::from_str(raw)
        .with_context(|| format!("{}: metadata is not JSON", path.display()))?;
    let format = value.get("format").and_then(|v| v.as_str()).unwrap_or("");
    if format != FORMAT {
        bail!(
            "{}: format {format:?} is not a SAC checkpoint ({FORMAT:?}); `lmtrain expert` reads SAC runs only",
            path.display()
        );
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(VERSION) {
        bail!(
            "{}: SAC checkpoint version {version}, this lmtrain reads version {VERSION}",
            path.display()
        );
    }
    serde_json::from_value(value)
        .with_context(|| format!("{}: malformed SAC checkpoint metadata", path.display()))
}

/// Reads a checkpoint, checking that its tensors match `shapes`.
pub fn load(path: &Path, shapes: &SacShapes) -> Result<(SacCheckpointMeta, HostSacState)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read SAC checkpoint {}", path.display()))?;
    let meta = meta_from_bytes(path, &bytes)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        anyhow!(
            "SAC checkpoint {} is corrupt ({e}); use an earlier one",
            path.display()
        )
    })?;
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let view = st
            .tensor(name)
            .map_err(|_| anyhow!("SAC checkpoint {} has no tensor {name}: it was written for other networks (sac.hidden or the environment differ)", path.display()))?;
        if view.shape() != shape || view.dtype() != Dtype::F32 {
            bail!(
                "SAC checkpoint {}: tensor {name} is {:?} {:?}, expected F32 {shape:?} (sac.hidden or the environment differ)",
                path.display(),
                view.dtype(),
                view.shape()
            );
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let read = |prefix: &str, specs: &[ParamSpec]| -> Result<HostParams> {
        specs
            .iter()
            .map(|s| tensor(&format!("{prefix}{}", s.name), &s.shape))
            .collect()
    };
    let specs = SacShapesSpecs::of(shapes);
    let (a, c) = (&specs.actor, &specs.critics);
    let state = HostSacState {
        actor: read("", a)?,
        critics: read("", c)?,
        targets: read("target.", c)?,
        log_alpha: tensor("log_alpha", &[1])?[0],
        actor_m: read("optim.m.", a)?,
        actor_v: read("optim.v.", a)?,
        critic_m: read("optim.m.", c)?,
        critic_v: read("optim.v.", c)?,
        alpha_m: tensor("optim.m.log_alpha", &[1])?[0],
        alpha_v: tensor("optim.v.log_alpha", &[1])?[0],
        actor_steps: meta.actor_steps,
        critic_steps: meta.critic_steps,
        alpha_steps: meta.alpha_steps,
    };
    Ok((meta, state))
}

/// SAC checkpoint files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::fsutil::list_named(dir, "sac-", ".safetensors")
}

/// Keeps the newest `keep` checkpoints and only the newest checkpoint's replay buffer.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    let files = list(dir)?;
    if files.len() > keep {
        for old in &files[..files.len() - keep] {
            std::fs::remove_file(old)
                .with_context(|| format!("cannot delete old checkpoint {}", old.display()))?;
        }
    }
    let newest = files
        .last()
        .and_then(|p| read_meta(p).ok())
        .map(|m| buffer_name(m.step));
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if name.starts_with("replay-")
            && name.ends_with(".safetensors")
            && Some(&name) != newest.as_ref()
        {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete old replay buffer {}", path.display()))?;
        }
    }
    Ok(())
}
