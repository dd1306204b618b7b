//! Interoperability with Hugging Face `transformers`: exporting lmtrain checkpoints as GPT-2
//! directories that `GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained` load,
//! and importing such directories (GPT-2 124M's included) for sampling and fine-tuning.
//!
//! lmtrain's parameters already carry Hugging Face GPT-2 names and its Conv1D `[in, out]`
//! layouts, so both directions copy tensors without renaming or transposing; what differs is the
//! metadata around them (config.json, tokenizer files) and, for foreign files, the name prefix,
//! dtypes and buffers that are not parameters.

pub mod export;
pub mod hf_config;
pub mod hf_weights;
pub mod host_model;
pub mod init_from;
pub mod inspect;
pub mod logits_report;
