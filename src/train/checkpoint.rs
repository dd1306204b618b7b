//! Checkpoints: one safetensors file per save, holding the raw weights, the EMA weights and the
//! AdamW moments in full f32 (and, for `ema.kind = "bema"`, BEMA's θ₀ and the plain EMA), with
//! the step, token count, data cursor, tokenizer hash and config in its metadata. Writes are
//! atomic (temporary file, fsync, rename, fsync of the directory), so an interrupted or failed
//! save never damages an earlier checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::model::{HostParams, ParamSpec};

/// Identifies lmtrain checkpoints among other safetensors files.
pub const FORMAT: &str = "lmtrain-checkpoint";
/// Bumped whenever the layout changes (docs/checkpoint-format.md has the plan). Version 2 adds
/// the checksum and the list of train shards; version 3 the task's buffers (`buffer.*`
/// tensors, non-trained: BC's observation normalisation); version 4 BEMA's θ₀ and plain EMA
/// (`ema0.*`, `ema_plain.*`, present for `ema.kind = "bema"` runs only). Versions 1 to 3 still
/// load, with a warning.
pub const VERSION: u32 = 4;
/// The oldest version this lmtrain reads.
pub const OLDEST_READABLE: u32 = 1;

/// Everything a checkpoint stores besides tensors.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CheckpointMeta {
    pub format: String,
    pub version: u32,
    pub step: u64,
    pub tokens: u64,
    pub cursor: serde_json::Value,
    /// The resolved config (TOML) of the run.
    pub config: String,
    /// sha256 of the tokenizer.json (empty for tasks without one).
    pub tokenizer_hash: String,
    pub val_loss_raw: Option<f64>,
    pub val_loss_ema: Option<f64>,
    pub has_ema: bool,
    /// The train shards the run streamed (absolute paths, in order); a resume on another list
    /// is refused unless accepted explicitly. Empty in version 1.
    #[serde(default)]
    pub train_shards: Vec<String>,
    /// sha256 over every tensor's name and bytes, in name order, written at save time and
    /// checked on load. None in version 1.
    #[serde(default)]
    pub checksum: Option<String>,
    /// Rollbacks the run has made (`train.on_nonfinite = "rollback"`); 0 in version 1.
    #[serde(default)]
    pub rollbacks: u32,
    /// What the task needs to use the weights outside training (BC: the environment id and
    /// dimensions); null for language models and before version 3.
    #[serde(default)]
    pub task_info: serde_json::Value,
}

/// The checksum of a checkpoint's tensors: sha256 over (name length, name, byte length, bytes)
/// of each tensor in name order.
fn tensors_checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut items: Vec<(&str, &[u8])> = tensors.collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, bytes) in items {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    format!("{:x}", h.finalize())
}

/// The tensors of a checkpoint, in spec order.
pub struct CheckpointState {
    pub params: HostParams,
    /// The weights the run evaluated as its EMA: the EMA, or for a BEMA run the bias-corrected
    /// weights α_t(θ_t − θ₀) + EMA_t (what `--ema` everywhere uses).
    pub ema: Option<HostParams>,
    pub adam_m: HostParams,
    pub adam_v: HostParams,
    /// Non-trained tensors of the task, by name (flat; stored 1-D as `buffer.<name>`).
    pub buffers: Vec<(String, Vec<f32>)>,
}

/// What a BEMA run (`ema.kind = "bema"`) needs besides [`CheckpointState`] to resume exactly
/// (version 4): θ₀ (`ema0.*`) and the plain EMA_t its recursion continues from
/// (`ema_plain.*`), in spec order.
pub struct BemaState {
    pub theta0: HostParams,
    pub ema: HostParams,
}

/// The prefix of BEMA's θ₀ tensors.
pub const THETA0_PREFIX: &str = "ema0.";
/// The prefix of a BEMA run's plain EMA tensors.
pub const PLAIN_EMA_PREFIX: &str = "ema_plain.";

/// The file name for a step; zero-padded so that names sort by step.
pub fn file_name(step: u64) -> String {
    format!("ckpt-{step:09}.safetensors")
}

/// Writes a checkpoint atomically into `dir` and returns its path.
pub fn save(
    dir: &Path,
    specs: &[ParamSpec],
    state: &CheckpointState,
    meta: &CheckpointMeta,
) -> Result<PathBuf> {
    save_with_bema(dir, specs, state, None, meta)
}

/// [`save`], with a BEMA run's θ₀ and plain EMA (`state.ema` then holds the BEMA weights).
pub fn save_with_bema(
    dir: &Path,
    specs: &[ParamSpec],
    state: &CheckpointState,
    bema: Option<&BemaState>,
    meta: &CheckpointMeta,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create checkpoint directory {}", dir.display()))?;
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |prefix: &str, values: &HostParams| {
        for (spec, v) in specs.iter().zip(values) {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            owned.push((format!("{prefix}{}", spec.name), spec.shape.clone(), bytes));
        }
    };
    add("model.", &state.params);
    if let Some(ema) = &state.ema {
        add("ema.", ema);
    }
    if let Some(b) = bema {
        add(THETA0_PREFIX, &b.theta0);
        add(PLAIN_EMA_PREFIX, &b.ema);
    }
    add("optim.m.", &state.adam_m);
    add("optim.v.", &state.adam_v);
    for (name, values) in &state.buffers {
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        owned.push((format!("buffer.{name}"), vec![values.len()], bytes));
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| anyhow!("tensor {name}: {e}"))
        })
        .collect::<Result<_>>()?;
    let mut meta = meta.clone();
    meta.checksum = Some(tensors_checksum(
        owned.iter().map(|(n, _, b)| (n.as_str(), b.as_slice())),
    ));
    let mut metadata = HashMap::new();
    metadata.insert(
        "lmtrain".to_string(),
        serde_json::to_string(&meta).context("cannot serialize checkpoint metadata")?,
    );
    let bytes = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| anyhow!("cannot serialize checkpoint: {e}"))?;
    let path = dir.join(file_name(meta.step));
    crate::fsutil::write_atomic(&path, &bytes).with_context(|| {
        format!(
            "saving checkpoint {} failed; earlier checkpoints are intact. Free disk space or change train.out_dir, then resume",
            path.display()
        )
    })?;
    Ok(path)
}

/// Reads a checkpoint, checking its format, version and that its tensors match `specs` (when
/// given). `None` for specs skips the shape check (for `inspect`). For a BEMA run `state.ema`
/// is the BEMA weights; [`load_with_bema`] also returns what a resume needs.
pub fn load(path: &Path, specs: Option<&[ParamSpec]>) -> Result<(CheckpointMeta, CheckpointState)> {
    let (meta, state, _) = load_with_bema(path, specs)?;
    Ok((meta, state))
}

/// [`load`], with a BEMA run's θ₀ and plain EMA (`None` for other runs and before version 4).
pub fn load_with_bema(
    path: &Path,
    specs: Option<&[ParamSpec]>,
) -> Result<(CheckpointMeta, CheckpointState, Option<BemaState>)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let meta = read_meta_from_bytes(path, &bytes)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        anyhow!(
            "checkpoint {} is corrupt ({e}); use an earlier checkpoint from the same directory",
            path.display()
        )
    })?;
    verify_checksum(path, &meta, &st)?;
    let specs: Vec<ParamSpec> = match specs {
        Some(s) => s.to_vec(),
        None => specs_from_file(&st),
    };
    let read = |prefix: &str| -> Result<HostParams> {
        specs
            .iter()
            .map(|spec| {
                let name = format!("{prefix}{}", spec.name);
                let view = st.tensor(&name).map_err(|_| {
                    anyhow!(
                        "checkpoint {} has no tensor {name}: it was written for a different model (check model.* in the config)",
                        path.display()
                    )
                })?;
                if view.shape() != spec.shape.as_slice() || view.dtype() != Dtype::F32 {
                    bail!(
                        "checkpoint {}: tensor {name} is {:?} {:?}, the model expects F32 {:?} (incompatible model config)",
                        path.display(),
                        view.dtype(),
                        view.shape(),
                        spec.shape
                    );
                }
                Ok(view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect())
            })
            .collect()
    };
    let state = CheckpointState {
        params: read("model.")?,
        ema: if meta.has_ema {
            Some(read("ema.")?)
        } else {
            None
        },
        adam_m: read("optim.m.")?,
        adam_v: read("optim.v.")?,
        buffers: read_buffers(&st),
    };
    let has_bema = st.names().iter().any(|n| n.starts_with(THETA0_PREFIX));
    let bema = if has_bema {
        Some(BemaState {
            theta0: read(THETA0_PREFIX)?,
            ema: read(PLAIN_EMA_PREFIX)?,
        })
    } else {
        None
    };
    Ok((meta, state, bema))
}

/// The `buffer.*` tensors, by name without the prefix, in name order (none before version 3).
fn read_buffers(st: &SafeTensors) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            let short = name.strip_prefix("buffer.")?.to_string();
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Some((short, values))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn verify_checksum(path: &Path, meta: &CheckpointMeta, st: &SafeTensors) -> Result<()> {
    let Some(want) = &meta.checksum else {
        return Ok(());
    };
    let tensors = st.tensors();
    let got = tensors_checksum(tensors.iter().map(|(n, v)| (n.as_str(), v.data())));
    if &got != want {
        bail!(
            "checkpoint {} is corrupt: its tensors' checksum does not match the one stored when it was written (a flipped or truncated byte); use an earlier checkpoint from the same directory",
            path.display()
        );
    }
    Ok(())
}

/// Reads a whole checkpoint and checks its checksum, without knowing the model.
pub fn verify(path: &Path) -> Result<CheckpointMeta> {
    let (meta, _) = load(path, None)?;
    Ok(meta)
}

/// Reads only the metadata (for `inspect` and resume checks).
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    read_meta_from_bytes(path, &bytes)
}

fn read_meta_from_bytes(path: &Path, bytes: &[u8]) -> Result<CheckpointMeta> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        anyhow!(
            "{} is not a readable safetensors file ({e}): the checkpoint is corrupt or truncated; use an earlier one",
            path.display()
        )
    })?;
    let raw = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("lmtrain"))
        .ok_or_else(|| {
            anyhow!(
                "{} is a safetensors file but not an lmtrain checkpoint (no `lmtrain` metadata); a Hugging Face GPT-2 directory is read with --hf DIR (or model.init_from = \"hf:DIR\")",
                path.display()
            )
        })?;
    let value: serde_json::Value = serde_json::from_str(raw)
        .with_context(|| format!("{}: checkpoint metadata is not JSON", path.display()))?;
    let format = value.get("format").and_then(|v| v.as_str()).unwrap_or("");
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if format == crate::rl::checkpoint::FORMAT {
        bail!(
            "{} is a SAC checkpoint, not a language-model one: use `lmtrain expert` (export, eval, train --resume)",
            path.display()
        );
    }
    if format != FORMAT {
        bail!("{}: format {format:?} is not {FORMAT:?}", path.display());
    }
    if version > u64::from(VERSION) || version < u64::from(OLDEST_READABLE) {
        bail!(
            "{}: checkpoint version {version}, this lmtrain reads versions {OLDEST_READABLE} to {VERSION}; use the lmtrain that wrote it (or a newer one)",
            path.display()
        );
    }
    if version < u64::from(VERSION) {
        warn_old_version(path, version);
    }
    serde_json::from_value(value)
        .with_context(|| format!("{}: checkpoint metadata is malformed", path.display()))
}

/// Says once per file and process that an older checkpoint version was loaded.
fn warn_old_version(path: &Path, version: u64) {
    use std::sync::Mutex;
    static WARNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.iter().any(|p| p == path) {
        warned.push(path.to_path_buf());
        let mut missing = Vec::new();
        if version < 2 {
            missing.push("no checksum and no list of train shards to check");
        }
        if version < 3 {
            missing.push(
                "no task buffers (language models need none; behaviour cloning did not exist)",
            );
        }
        if version < 4 {
            missing.push("no BEMA θ₀ (ema0.*; ema.kind = \"bema\" did not exist)");
        }
        let lacks = format!("has {}", missing.join("; "));
        eprintln!(
            "warning: {} is checkpoint version {version} (this lmtrain writes {VERSION}): it loads, but {lacks}",
            path.display()
        );
    }
}

/// Parameter specs recovered from the `model.` tensors of a file, in name order.
fn specs_from_file(st: &SafeTensors) -> Vec<ParamSpec> {
    let mut specs: Vec<ParamSpec> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            name.strip_prefix("model.")
                .map(|n| ParamSpec::new(n, view.shape()))
        })
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs
}

/// Checkpoint files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::fsutil::list_named(dir, "ckpt-", ".safetensors")
}

/// A checkpoint file, or a run directory (meaning its newest intact checkpoint: newer ones
/// that fail to read or whose checksum does not match are skipped, saying so on stderr).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        let dir = if path.join("checkpoints").is_dir() {
            path.join("checkpoints")
        } else {
            path.to_path_buf()
        };
        let files = list(&dir)?;
        if files.is_empty() && dir_has_prefix(&dir, "sac-") {
            bail!(
                "{} holds SAC checkpoints (sac-*.safetensors), not language-model ones: use `lmtrain expert` (export, eval, train --resume)",
                path.display()
            );
        }
        if files.is_empty() {
            bail!(
                "{} holds no checkpoint (ckpt-*.safetensors); the run saved none yet",
                path.display()
            );
        }
        let mut skipped: Vec<(PathBuf, anyhow::Error)> = Vec::new();
        for file in files.iter().rev() {
            match verify(file) {
                Ok(_) => {
                    for (f, why) in &skipped {
                        eprintln!(
                            "warning: skipping damaged checkpoint {}: {why:#}",
                            f.display()
                        );
                    }
                    if !skipped.is_empty() {
                        eprintln!("using the newest intact checkpoint, {}", file.display());
                    }
                    return Ok(file.clone());
                }
                Err(e) => skipped.push((file.clone(), e)),
            }
        }
        bail!(
            "every checkpoint in {} is damaged; the newest: {:#}",
            dir.display(),
            skipped[0].1
        );
    }
    bail!(
        "{} does not exist: give a checkpoint file or a run directory",
        path.display()
    )
}

fn dir_has_prefix(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
    })
}

/// Deletes all but the newest `keep` checkpoints.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    let files = list(dir)?;
    if files.len() > keep {
        for old in &files[..files.len() - keep] {
            std::fs::remove_file(old)
                .with_context(|| format!("cannot delete old checkpoint {}", old.display()))?;
        }
    }
    Ok(())
}
