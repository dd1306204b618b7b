//! Shipped experts: an actor as a self-describing safetensors file
//! (`data/experts/<env>.safetensors`) and its card (`<env>.json`). The format is documented in
//! docs/expert-format.md so that another program can run an expert.
//!
//! Tensors (f32, `[in, out]` layout, `y = x @ W + b`): `fc1.weight`, `fc1.bias`, …, `fc_mean.*`,
//! `fc_logstd.*`. Metadata (strings): `format` = "lmtrain-expert", `version` = "1", `env`,
//! `obs_dim`, `action_dim`, `hidden` (JSON list), `activation` = "relu", `action_scale` and
//! `action_bias` (JSON lists), `log_std_min`, `log_std_max`. The deterministic policy is
//! `tanh(fc_mean(relu(… relu(fc1(obs)))))·action_scale + action_bias`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::mlp::MlpShape;
use super::policy::{ActionMap, HostActor, LogStdBounds};

pub const FORMAT: &str = "lmtrain-expert";
pub const VERSION: &str = "1";

/// The card beside an expert file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ExpertCard {
    pub env: String,
    /// The resolved training config (TOML).
    pub config: String,
    /// Environment steps the expert was trained for.
    pub steps: u64,
    pub seed: u64,
    /// Deterministic returns on evaluation seeds `eval_seed`, `eval_seed + 1`, ….
    pub returns: Vec<f64>,
    pub eval_seed: u64,
    pub return_mean: f64,
    pub return_std: f64,
    /// The training run once continued with a refilled replay buffer.
    pub refilled: bool,
}

/// Writes `actor` for environment `env` to `path` (atomically).
pub fn save(path: &Path, env: &str, actor: &HostActor) -> Result<()> {
    let specs = actor.shape.specs("");
    let bytes: Vec<Vec<u8>> = actor
        .params
        .iter()
        .map(|v| bytemuck::cast_slice(v).to_vec())
        .collect();
    let views: Vec<(String, TensorView)> = specs
        .iter()
        .zip(&bytes)
        .map(|(s, b)| {
            TensorView::new(Dtype::F32, s.shape.clone(), b)
                .map(|v| (s.name.clone(), v))
                .map_err(|e| anyhow!("tensor {}: {e}", s.name))
        })
        .collect::<Result<_>>()?;
    let json = |v: &[f32]| serde_json::to_string(v).unwrap_or_default();
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("version", VERSION.to_string()),
        ("env", env.to_string()),
        ("obs_dim", actor.shape.input.to_string()),
        ("action_dim", actor.map.scale.len().to_string()),
        ("hidden", serde_json::to_string(&actor.shape.hidden)?),
        ("activation", "relu".to_string()),
        ("action_scale", json(&actor.map.scale)),
        ("action_bias", json(&actor.map.bias)),
        ("log_std_min", actor.bounds.min.to_string()),
        ("log_std_max", actor.bounds.max.to_string()),
        ("layout", "weight [in, out]: y = x @ W + b".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let data = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| anyhow!("cannot serialize the expert: {e}"))?;
    crate::fsutil::write_atomic(path, &data)
}

/// Reads an expert file; returns its environment id and actor.
pub fn load(path: &Path) -> Result<(String, HostActor)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read expert {}", path.display()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow!("{} is not a readable safetensors file: {e}", path.display()))?;
    let meta = header
        .metadata()
        .clone()
        .ok_or_else(|| anyhow!("{} has no metadata: not an lmtrain expert", path.display()))?;
    if meta.contains_key("lmtrain") {
        bail!(
            "{} is an lmtrain checkpoint, not an expert file: write one with `lmtrain expert export --checkpoint RUN_DIR --out FILE`",
            path.display()
        );
    }
    let get = |k: &str| -> Result<&String> {
        meta.get(k)
            .ok_or_else(|| anyhow!("expert {} lacks metadata key {k:?}", path.display()))
    };
    if get("format")? != FORMAT {
        bail!(
            "{} is not an lmtrain expert (format {:?})",
            path.display(),
            get("format")?
        );
    }
    if get("version")? != VERSION {
        bail!(
            "expert {}: version {}, this lmtrain reads {VERSION}",
            path.display(),
            get("version")?
        );
    }
    if get("activation")? != "relu" {
        bail!(
            "expert {}: activation {} is not supported (relu only)",
            path.display(),
            get("activation")?
        );
    }
    let num = |k: &str| -> Result<f64> {
        get(k)?
            .parse()
            .with_context(|| format!("expert {}: {k} is not a number", path.display()))
    };
    let list = |k: &str| -> Result<Vec<f32>> {
        serde_json::from_str(get(k)?)
            .with_context(|| format!("expert {}: {k} is not a JSON list", path.display()))
    };
    let obs_dim = num("obs_dim")? as usize;
    let action_dim = num("action_dim")? as usize;
    let hidden: Vec<usize> = serde_json::from_str(get("hidden")?)
        .with_context(|| format!("expert {}: hidden is not a JSON list", path.display()))?;
    let shape = MlpShape::actor(obs_dim, action_dim, &hidden);
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("expert {} is corrupt: {e}", path.display()))?;
    let params = shape
        .specs("")
        .iter()
        .map(|s| {
            let v = st
                .tensor(&s.name)
                .map_err(|_| anyhow!("expert {} has no tensor {}", path.display(), s.name))?;
            if v.shape() != s.shape.as_slice() || v.dtype() != Dtype::F32 {
                bail!(
                    "expert {}: tensor {} is {:?} {:?}, expected F32 {:?}",
                    path.display(),
                    s.name,
                    v.dtype(),
                    v.shape(),
                    s.shape
                );
            }
            Ok(v.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        })
        .collect::<Result<Vec<Vec<f32>>>>()?;
    let map = ActionMap {
        scale: list("action_scale")?,
        bias: list("action_bias")?,
    };
    if map.scale.len() != action_dim || map.bias.len() != action_dim {
        bail!(
            "expert {}: action_scale/action_bias do not have action_dim = {action_dim} entries",
            path.display()
        );
    }
    let actor = HostActor {
        shape,
        params,
        map,
        bounds: LogStdBounds {
            min: num("log_std_min")?,
            max: num("log_std_max")?,
        },
    };
    Ok((get("env")?.clone(), actor))
}

/// Reads the card beside an expert (`<stem>.json`).
pub fn load_card(expert: &Path) -> Result<ExpertCard> {
    let path = expert.with_extension("json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the expert card {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("expert card {} is malformed", path.display()))
}

pub fn save_card(expert: &Path, card: &ExpertCard) -> Result<()> {
    let path = expert.with_extension("json");
    let text = serde_json::to_string_pretty(card)? + "\n";
    crate::fsutil::write_atomic(&path, text.as_bytes())
}
