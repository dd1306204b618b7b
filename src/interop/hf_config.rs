//! `config.json` of a Hugging Face GPT-2 directory: written on export, read (and checked against
//! what lmtrain implements) on import.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::model::gpt::LN_EPS;
use crate::model::{Activation, GptShape};

/// The GPT2Config for a model of `shape` whose end-of-text token is `eot_id`. Dropout is 0: the
/// export is for inference, and a fine-tuner sets its own.
pub fn to_config_json(shape: &GptShape, eot_id: u32) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": shape.activation.hf_name(),
        "vocab_size": shape.vocab_size,
        "n_positions": shape.block_size,
        "n_ctx": shape.block_size,
        "n_embd": shape.n_embd,
        "n_layer": shape.n_layer,
        "n_head": shape.n_head,
        "n_inner": null,
        "layer_norm_epsilon": LN_EPS,
        "initializer_range": 0.02,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "tie_word_embeddings": true,
        "use_cache": true,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "torch_dtype": "float32",
    })
}

/// The keys of a GPT2Config that change the computation. Absent keys take GPT2Config's defaults
/// (notably `activation_function = "gelu_new"`).
#[derive(Deserialize, Debug)]
struct HfGpt2Config {
    model_type: Option<String>,
    n_layer: usize,
    n_head: usize,
    n_embd: usize,
    vocab_size: usize,
    n_positions: Option<usize>,
    n_ctx: Option<usize>,
    activation_function: Option<String>,
    layer_norm_epsilon: Option<f64>,
    n_inner: Option<usize>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    tie_word_embeddings: Option<bool>,
    add_cross_attention: Option<bool>,
}

/// What an imported config.json says about the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedConfig {
    pub shape: GptShape,
    /// False only when config.json says `tie_word_embeddings: false`; the weights then decide
    /// (an untied head equal to the embedding is accepted).
    pub tied: bool,
}

/// Reads `config.json` and refuses, naming the key, anything lmtrain's GPT does not compute.
pub fn read_config_json(path: &Path) -> Result<ImportedConfig> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: a Hugging Face GPT-2 directory has a config.json",
            path.display()
        )
    })?;
    let c: HfGpt2Config = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a GPT-2 config.json (it needs n_layer, n_head, n_embd and vocab_size)",
            path.display()
        )
    })?;
    let what = path.display();
    if let Some(t) = c.model_type.as_deref() {
        if t != "gpt2" {
            bail!("{what}: model_type {t:?} is not \"gpt2\"; lmtrain imports GPT-2 models only");
        }
    }
    let activation =
        Activation::from_hf_name(c.activation_function.as_deref().unwrap_or("gelu_new"))
            .with_context(|| format!("in {what}"))?;
    let block_size = match (c.n_positions, c.n_ctx) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => 1024,
    };
    if c.n_layer == 0 || c.n_head == 0 || c.n_embd == 0 || block_size == 0 || c.vocab_size == 0 {
        bail!("{what}: n_layer, n_head, n_embd, n_positions and vocab_size must be ≥ 1");
    }
    if !c.n_embd.is_multiple_of(c.n_head) {
        bail!(
            "{what}: n_embd = {} is not divisible by n_head = {}",
            c.n_embd,
            c.n_head
        );
    }
    if let Some(eps) = c.layer_norm_epsilon {
        if (eps - LN_EPS).abs() > 1e-12 {
            bail!("{what}: layer_norm_epsilon = {eps}, lmtrain's GPT uses {LN_EPS}");
        }
    }
    if let Some(inner) = c.n_inner {
        if inner != 4 * c.n_embd {
            bail!(
                "{what}: n_inner = {inner}, lmtrain's GPT uses an MLP of 4·n_embd = {}",
                4 * c.n_embd
            );
        }
    }
    if c.scale_attn_weights == Some(false) || c.scale_attn_by_inverse_layer_idx == Some(true) {
        bail!("{what}: lmtrain scales attention scores by 1/√head_dim only (scale_attn_weights = true, scale_attn_by_inverse_layer_idx = false)");
    }
    if c.add_cross_attention == Some(true) {
        bail!("{what}: add_cross_attention = true is not supported (GPT-2 decoders only)");
    }
    Ok(ImportedConfig {
        shape: GptShape {
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_embd: c.n_embd,
            block_size,
            vocab_size: c.vocab_size,
            dropout: 0.0,
            activation,
        },
        tied: c.tie_word_embeddings.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(activation: Activation) -> GptShape {
        GptShape {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            block_size: 96,
            vocab_size: 320,
            dropout: 0.1,
            activation,
        }
    }

    #[test]
    fn an_exported_config_reads_back_as_the_same_shape_without_dropout() {
        let dir = tempfile::tempdir().unwrap();
        for a in [Activation::Exact, Activation::Tanh] {
            let path = dir.path().join("config.json");
            std::fs::write(&path, to_config_json(&shape(a), 0).to_string()).unwrap();
            let got = read_config_json(&path).unwrap();
            assert_eq!(
                got.shape,
                GptShape {
                    dropout: 0.0,
                    ..shape(a)
                }
            );
            assert!(got.tied);
        }
    }

    #[test]
    fn gpt2_124m_config_means_gelu_new() {
        // The keys of GPT-2 124M's config.json that matter (its activation is explicit there,
        // and absent keys default to gelu_new in GPT2Config anyway).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"activation_function":"gelu_new","architectures":["GPT2LMHeadModel"],"attn_pdrop":0.1,
                "bos_token_id":50256,"embd_pdrop":0.1,"eos_token_id":50256,"initializer_range":0.02,
                "layer_norm_epsilon":1e-05,"model_type":"gpt2","n_ctx":1024,"n_embd":768,"n_head":12,
                "n_layer":12,"n_positions":1024,"resid_pdrop":0.1,"vocab_size":50257}"#,
        )
        .unwrap();
        let c = read_config_json(&path).unwrap();
        assert_eq!(c.shape.activation, Activation::Tanh);
        assert_eq!(
            (
                c.shape.n_layer,
                c.shape.n_embd,
                c.shape.block_size,
                c.shape.vocab_size
            ),
            (12, 768, 1024, 50257)
        );
        std::fs::write(
            &path,
            r#"{"n_layer":1,"n_head":1,"n_embd":8,"vocab_size":300}"#,
        )
        .unwrap();
        assert_eq!(
            read_config_json(&path).unwrap().shape.activation,
            Activation::Tanh
        );
    }

    #[test]
    fn unsupported_configs_are_refused_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        for (json, key) in [
            (
                r#"{"model_type":"llama","n_layer":1,"n_head":1,"n_embd":8,"vocab_size":300}"#,
                "model_type",
            ),
            (
                r#"{"activation_function":"relu","n_layer":1,"n_head":1,"n_embd":8,"vocab_size":300}"#,
                "relu",
            ),
            (
                r#"{"layer_norm_epsilon":1e-6,"n_layer":1,"n_head":1,"n_embd":8,"vocab_size":300}"#,
                "layer_norm_epsilon",
            ),
            (
                r#"{"n_inner":16,"n_layer":1,"n_head":1,"n_embd":8,"vocab_size":300}"#,
                "n_inner",
            ),
            (
                r#"{"n_layer":1,"n_head":3,"n_embd":8,"vocab_size":300}"#,
                "n_head",
            ),
            (r#"{"n_layer":1}"#, "n_head"),
        ] {
            std::fs::write(&path, json).unwrap();
            let err = format!("{:#}", read_config_json(&path).unwrap_err());
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
