//! Text data: parquet shards, tokenizer, token windows and batches. Knows nothing of models.

pub mod shards;
pub mod synth;
pub mod tokenizer;
pub mod windows;
