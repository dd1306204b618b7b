//! `lmtrain logits`: a model's logits for given tokens, as JSON, so that an outside
//! implementation (Hugging Face transformers, in scripts/check_hf_export.py) can be compared
//! with lmtrain's own forward pass and greedy decoding.

use anyhow::{anyhow, bail, Result};
use burn::tensor::{Int, Tensor, TensorData};

use crate::sample::{Decoding, LoadedModel};

/// Logits `[tokens.len()][vocab_size]` of one sequence, every row of the model's vocabulary
/// (padding rows included, as transformers computes them too).
pub fn sequence_logits(model: &LoadedModel, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
    let t = tokens.len();
    let bs = model.gpt.shape.block_size;
    if t == 0 || t > bs {
        bail!("give between 1 and block_size = {bs} tokens, not {t}");
    }
    let v = model.gpt.shape.vocab_size;
    if let Some(bad) = tokens.iter().find(|&&id| id as usize >= v) {
        bail!("token id {bad} is outside the model's vocabulary of {v}");
    }
    let ids: Vec<i64> = tokens.iter().map(|&x| x as i64).collect();
    let idx = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, t]), &model.device);
    let flat = model
        .gpt
        .forward(&model.params, idx, 0.0)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("cannot read logits: {e:?}"))?;
    Ok(flat.chunks_exact(v).map(<[f32]>::to_vec).collect())
}

/// The JSON report: the tokens and their text, the logits, and (when `greedy > 0`) lmtrain's
/// greedy continuation of the tokens, produced by the sampler itself (ids the tokenizer knows
/// only; stops at end-of-text).
pub fn report(model: &LoadedModel, tokens: &[u32], greedy: usize) -> Result<serde_json::Value> {
    let logits = sequence_logits(model, tokens)?;
    let continuation = if greedy > 0 {
        let d = Decoding {
            temperature: 0.0,
            top_k: 0,
            seed: 0,
        };
        model.generate(tokens, greedy, &d)?
    } else {
        Vec::new()
    };
    Ok(serde_json::json!({
        "source": model.description,
        "tokens": tokens,
        // Padding ids have no text; the logits are still meaningful.
        "text": model.tokenizer.decode(tokens).ok(),
        "vocab_size": model.gpt.shape.vocab_size,
        "tokenizer_vocab_size": model.tokenizer.vocab_size(),
        "eot_id": model.tokenizer.eot_id(),
        "logits": logits,
        "greedy": continuation,
    }))
}

/// Parses `--tokens 1,2,3`.
pub fn parse_tokens(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<u32>()
                .map_err(|_| anyhow!("--tokens {s:?}: {x:?} is not a token id (write e.g. 1,2,3)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_parse_and_junk_is_refused() {
        assert_eq!(parse_tokens("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert!(parse_tokens("1,x")
            .unwrap_err()
            .to_string()
            .contains("\"x\""));
        assert!(parse_tokens("-1").is_err());
    }
}
