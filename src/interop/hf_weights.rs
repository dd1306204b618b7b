//! `model.safetensors` of a Hugging Face GPT-2 directory.
//!
//! Writing: lmtrain's parameters under their own names (already GPT-2's), F32, with the
//! `{"format": "pt"}` metadata that `transformers` checks; no `lm_head.weight`, since GPT-2 ties
//! it to `transformer.wte.weight` and `save_pretrained` omits it too.
//!
//! Reading accepts what real GPT-2 files contain: names with or without the `transformer.`
//! prefix (GPT-2 124M's file has none), F32, F16 or BF16 values (widened to f32 exactly), the
//! causal-mask buffers `attn.bias` / `attn.masked_bias` (ignored: they are not parameters), and a
//! `lm_head.weight` that repeats the embedding. Anything else extra or missing is an error.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::model::{HostParams, ParamSpec};

const PREFIX: &str = "transformer.";
const LM_HEAD: &str = "lm_head.weight";
const WTE: &str = "transformer.wte.weight";

/// The bytes of a `model.safetensors` holding `values` (in `specs` order) as F32.
pub fn serialize_f32(specs: &[ParamSpec], values: &HostParams) -> Result<Vec<u8>> {
    if specs.len() != values.len() {
        bail!(
            "{} parameter specs but {} tensors",
            specs.len(),
            values.len()
        );
    }
    let bytes: Vec<Vec<u8>> = values
        .iter()
        .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = specs
        .iter()
        .zip(&bytes)
        .map(|(spec, b)| {
            TensorView::new(Dtype::F32, spec.shape.clone(), b)
                .map(|view| (spec.name.clone(), view))
                .map_err(|e| anyhow!("tensor {}: {e}", spec.name))
        })
        .collect::<Result<_>>()?;
    // transformers refuses safetensors files whose metadata lacks a known "format".
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| anyhow!("cannot serialize the weights: {e}"))
}

/// The canonical (lmtrain) name of a tensor name found in a file: `transformer.` is added to
/// names that lack it, except the LM head's.
fn canonical(name: &str) -> String {
    if name.starts_with(PREFIX) || name == LM_HEAD {
        name.to_string()
    } else {
        format!("{PREFIX}{name}")
    }
}

/// Attention-mask buffers that older `transformers` versions saved with the weights.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
}

/// Widens a tensor's data to f32. F32 is copied bit for bit.
pub fn to_f32(name: &str, view: &TensorView) -> Result<Vec<f32>> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => bail!("tensor {name} is {other:?}; lmtrain imports F32, F16 and BF16 weights"),
    })
}

/// Reads the parameters `specs` from the safetensors file at `path`. `tied`: what config.json
/// says; an `lm_head.weight` must equal the embedding either way, since lmtrain's head is tied.
pub fn read_params(path: &Path, specs: &[ParamSpec], tied: bool) -> Result<HostParams> {
    let bytes = std::fs::read(path).with_context(|| {
        let index = path.with_file_name("model.safetensors.index.json");
        if index.exists() {
            format!(
                "cannot read {}: sharded checkpoints (model.safetensors.index.json) are not supported; merge the shards into one model.safetensors",
                path.display()
            )
        } else {
            format!("cannot read {}: a Hugging Face GPT-2 directory needs a model.safetensors (PyTorch .bin files are not read)", path.display())
        }
    })?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("{} is not a readable safetensors file: {e}", path.display()))?;
    let what = path.display();
    let mut found: HashMap<String, TensorView> = HashMap::new();
    for (name, view) in st.tensors() {
        if is_buffer(&name) {
            continue;
        }
        let key = canonical(&name);
        if found.insert(key.clone(), view).is_some() {
            bail!(
                "{what}: tensor {key} appears twice (with and without the `transformer.` prefix)"
            );
        }
    }
    let mut params = Vec::with_capacity(specs.len());
    for spec in specs {
        let view = found.remove(&spec.name).ok_or_else(|| {
            anyhow!(
                "{what} has no tensor {} (nor without its `transformer.` prefix): it is not a GPT-2 of this config.json's shape",
                spec.name
            )
        })?;
        if view.shape() != spec.shape.as_slice() {
            bail!(
                "{what}: tensor {} has shape {:?}, config.json implies {:?} (GPT-2's Conv1D layout is [in, out])",
                spec.name,
                view.shape(),
                spec.shape
            );
        }
        params.push(to_f32(&spec.name, &view)?);
    }
    if let Some(head) = found.remove(LM_HEAD) {
        let wte = specs.iter().position(|s| s.name == WTE);
        let same = wte.is_some_and(|i| {
            head.shape() == specs[i].shape.as_slice()
                && to_f32(LM_HEAD, &head).ok().as_ref() == Some(&params[i])
        });
        if !same {
            bail!(
                "{what}: lm_head.weight differs from the token embedding{}; lmtrain's LM head is tied to it",
                if tied { "" } else { " (tie_word_embeddings = false)" }
            );
        }
    } else if !tied {
        bail!(
            "{what}: config.json says tie_word_embeddings = false but there is no lm_head.weight"
        );
    }
    if !found.is_empty() {
        let mut extra: Vec<String> = found.into_keys().collect();
        extra.sort();
        bail!("{what} has tensors a GPT-2 does not: {}", extra.join(", "));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec::new(WTE, &[3, 2]),
            ParamSpec::new("transformer.ln_f.bias", &[2]),
        ]
    }

    /// A tensor to write: name, dtype, shape, little-endian bytes.
    type Raw = (&'static str, Dtype, Vec<usize>, Vec<u8>);

    fn write(path: &Path, tensors: Vec<Raw>) {
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        std::fs::write(path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn f32_round_trips_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let values = vec![
            vec![1.0, -0.0, f32::MIN_POSITIVE, 3.5e-42, 1e30, -7.25],
            vec![0.1, 0.2],
        ];
        std::fs::write(&path, serialize_f32(&specs(), &values).unwrap()).unwrap();
        let back = read_params(&path, &specs(), true).unwrap();
        for (a, b) in back.iter().flatten().zip(values.iter().flatten()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn gpt2_style_files_without_prefix_with_buffers_and_halves_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let wte = [0.5f32, -1.0, 2.0, 0.25, -0.125, 3.0];
        let f16: Vec<u8> = wte
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect();
        write(
            &path,
            vec![
                ("wte.weight", Dtype::F16, vec![3, 2], f16.clone()),
                ("ln_f.bias", Dtype::BF16, vec![2], bf16),
                (
                    "h.0.attn.bias",
                    Dtype::F32,
                    vec![1, 1, 2, 2],
                    f32_bytes(&[1.0; 4]),
                ),
                (
                    "h.0.attn.masked_bias",
                    Dtype::F32,
                    vec![],
                    f32_bytes(&[-1e4]),
                ),
                ("lm_head.weight", Dtype::F16, vec![3, 2], f16),
            ],
        );
        let p = read_params(&path, &specs(), true).unwrap();
        assert_eq!(p, vec![wte.to_vec(), vec![1.5, -2.0]]);
    }

    #[test]
    fn missing_extra_misshapen_and_untied_tensors_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let wte = f32_bytes(&[0.0; 6]);
        let bias = f32_bytes(&[0.0; 2]);
        let cases: Vec<(Vec<Raw>, &str)> = vec![
            (
                vec![("wte.weight", Dtype::F32, vec![3, 2], wte.clone())],
                "ln_f.bias",
            ),
            (
                vec![
                    ("wte.weight", Dtype::F32, vec![2, 3], wte.clone()),
                    ("ln_f.bias", Dtype::F32, vec![2], bias.clone()),
                ],
                "shape",
            ),
            (
                vec![
                    ("wte.weight", Dtype::F32, vec![3, 2], wte.clone()),
                    ("ln_f.bias", Dtype::F32, vec![2], bias.clone()),
                    (
                        "h.0.crossattention.q_attn.weight",
                        Dtype::F32,
                        vec![2],
                        bias.clone(),
                    ),
                ],
                "crossattention",
            ),
            (
                vec![
                    ("wte.weight", Dtype::F32, vec![3, 2], wte.clone()),
                    ("ln_f.bias", Dtype::F32, vec![2], bias.clone()),
                    (
                        "lm_head.weight",
                        Dtype::F32,
                        vec![3, 2],
                        f32_bytes(&[1.0; 6]),
                    ),
                ],
                "lm_head.weight differs",
            ),
            (
                vec![
                    ("wte.weight", Dtype::I64, vec![3], f32_bytes(&[0.0; 6])),
                    ("ln_f.bias", Dtype::F32, vec![2], bias.clone()),
                ],
                "shape",
            ),
            (
                vec![
                    ("wte.weight", Dtype::F64, vec![3, 2], f32_bytes(&[0.0; 12])),
                    ("ln_f.bias", Dtype::F32, vec![2], bias.clone()),
                ],
                "F64",
            ),
        ];
        for (tensors, needle) in cases {
            write(&path, tensors);
            let err = format!("{:#}", read_params(&path, &specs(), true).unwrap_err());
            assert!(err.contains(needle), "want {needle:?} in: {err}");
        }
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(read_params(&path, &specs(), true).is_err());
        let err = format!(
            "{:#}",
            read_params(&dir.path().join("nope.safetensors"), &specs(), true).unwrap_err()
        );
        assert!(err.contains("model.safetensors"), "{err}");
    }
}
