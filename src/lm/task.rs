//! The language-modelling [`Task`]: next-token cross-entropy on packed windows.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::gen_eval::GenerationEval;
use super::prepare::RunData;
use crate::config::Config;
use crate::data::tokenizer::TextTokenizer;
use crate::data::windows::{Cursor, TextSource, TrainStream};
use crate::model::{Gpt, HostParams, ParamSpec};
use crate::train::Task;

/// Input ids and next-token targets, `[batch, block_size]` each.
pub struct LmBatch {
    pub input: Tensor<2, Int>,
    pub target: Tensor<2, Int>,
}

pub struct LmTask {
    pub gpt: Gpt,
    source: Arc<TextSource>,
    tokenizer: Arc<TextTokenizer>,
    seed: u64,
    /// Started on the first batch, at `start`, so that a resume never tokenizes data it skips.
    stream: Option<TrainStream>,
    start: Cursor,
    /// Fixed validation windows (block_size + 1 tokens each).
    val: Vec<Vec<u32>>,
    batch_size: usize,
    /// Weights to start from instead of a random init (`model.init_from`).
    initial: Option<HostParams>,
    /// Long generations at the evaluation cadence (`eval.generate_every`).
    generation: Option<GenerationEval>,
    /// Log lines waiting for the trainer.
    pending_notes: Vec<String>,
}

impl LmTask {
    pub fn new(
        gpt: Gpt,
        source: Arc<TextSource>,
        tokenizer: Arc<TextTokenizer>,
        seed: u64,
        val: Vec<Vec<u32>>,
        batch_size: usize,
    ) -> Self {
        Self {
            gpt,
            source,
            tokenizer,
            seed,
            stream: None,
            start: Cursor::default(),
            val,
            batch_size,
            initial: None,
            generation: None,
            pending_notes: Vec::new(),
        }
    }

    /// The task of a run: `config`'s data seed and batch size over `data`'s training stream
    /// and fixed validation windows (copied), as the trainer and the landscape probe build it.
    pub fn for_run(gpt: Gpt, config: &Config, data: &RunData) -> Self {
        Self::new(
            gpt,
            data.train.clone(),
            data.tokenizer.clone(),
            config.train.seed,
            data.val.clone(),
            config.train.batch_size,
        )
    }

    /// Enables the long-generation evaluation.
    pub fn with_generation(mut self, generation: GenerationEval) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Starts a new run from `params` (in spec order) instead of a random init.
    pub fn with_initial_params(mut self, params: HostParams) -> Self {
        self.initial = Some(params);
        self
    }

    fn stream(&mut self) -> Result<&mut TrainStream> {
        if self.stream.is_none() {
            self.stream = Some(TrainStream::start(
                self.source.clone(),
                self.tokenizer.clone(),
                self.gpt.shape.block_size + 1,
                self.seed,
                self.start.clone(),
            )?);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| anyhow!("the data stream did not start"))
    }
}

/// Splits windows of T+1 tokens into inputs (first T) and targets (last T) on `device`.
pub fn windows_to_batch(windows: &[Vec<u32>], device: &Device) -> LmBatch {
    let b = windows.len();
    let t = windows[0].len() - 1;
    let mut input = Vec::with_capacity(b * t);
    let mut target = Vec::with_capacity(b * t);
    for w in windows {
        input.extend(w[..t].iter().map(|&x| x as i64));
        target.extend(w[1..].iter().map(|&x| x as i64));
    }
    LmBatch {
        input: Tensor::from_data(TensorData::new(input, [b, t]), device),
        target: Tensor::from_data(TensorData::new(target, [b, t]), device),
    }
}

impl Task for LmTask {
    type Batch = LmBatch;

    fn specs(&self) -> &[ParamSpec] {
        self.gpt.specs()
    }

    fn init_params(&self, seed: u64) -> HostParams {
        match &self.initial {
            Some(p) => p.clone(),
            None => self.gpt.init(seed),
        }
    }

    fn next_batch(&mut self, device: &Device) -> Result<LmBatch> {
        let batch_size = self.batch_size;
        let stream = self.stream()?;
        let windows = (0..batch_size)
            .map(|_| stream.next_window())
            .collect::<Result<Vec<_>>>()?;
        Ok(windows_to_batch(&windows, device))
    }

    fn batch_tokens(&self, batch: &LmBatch) -> usize {
        batch.input.shape().num_elements()
    }

    fn loss(&self, params: &[Tensor<1>], batch: &LmBatch, train: bool) -> Tensor<1> {
        let p = if train { self.gpt.shape.dropout } else { 0.0 };
        self.gpt
            .loss(params, batch.input.clone(), batch.target.clone(), p)
    }

    fn val_loss(&self, params: &[Tensor<1>], device: &Device) -> Result<f64> {
        // Batches of the training batch size keep memory bounded; the mean is over all tokens
        // (every window has the same length, so a mean of batch means weighted by size).
        let mut total = 0.0f64;
        let mut count = 0usize;
        for chunk in self.val.chunks(self.batch_size) {
            let batch = windows_to_batch(chunk, device);
            let loss: f32 = self
                .gpt
                .loss(params, batch.input, batch.target, 0.0)
                .try_into_scalar()
                .map_err(|e| anyhow!("cannot read the validation loss: {e:?}"))?;
            total += loss as f64 * chunk.len() as f64;
            count += chunk.len();
        }
        Ok(total / count as f64)
    }

    fn evaluate(
        &mut self,
        step: u64,
        raw: &[Tensor<1>],
        ema: Option<&[Tensor<1>]>,
        device: &Device,
    ) -> Result<Vec<(String, f64)>> {
        let Some(generation) = self.generation.as_mut() else {
            return Ok(Vec::new());
        };
        let mut weights = vec![("raw", raw)];
        if let Some(e) = ema {
            weights.push(("ema", e));
        }
        generation.evaluate(
            &self.gpt,
            step,
            &weights,
            &self.val,
            self.batch_size,
            device,
        )
    }

    fn evaluate_every(&self) -> u64 {
        self.generation.as_ref().map_or(0, GenerationEval::every)
    }

    fn step_logs(&self) -> &'static [&'static str] {
        &["generations.jsonl"]
    }

    fn cursor(&self) -> serde_json::Value {
        let cursor = self
            .stream
            .as_ref()
            .map_or_else(|| self.start.clone(), TrainStream::cursor);
        serde_json::to_value(cursor).unwrap_or(serde_json::Value::Null)
    }

    fn restore_cursor(&mut self, cursor: &serde_json::Value) -> Result<()> {
        self.start = serde_json::from_value(cursor.clone())
            .map_err(|e| anyhow!("the checkpoint's data cursor is malformed: {e}"))?;
        if self.start.packing < crate::data::windows::PACKING {
            self.pending_notes.push(format!(
                "note: this checkpoint was written with packing {} (each row group packed alone, its tail dropped); the run resumes on that packing, so it sees the same data as before. New runs carry tails across row groups",
                self.start.packing
            ));
        }
        self.stream = None;
        Ok(())
    }

    fn take_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.pending_notes);
        if let Some(s) = self.stream.as_mut() {
            notes.extend(s.take_notes());
        }
        notes
    }
}
