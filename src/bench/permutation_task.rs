//! The reference benchmark's synthetic task: sequences that follow a fixed random permutation,
//! x[t+1] = perm[x[t]], so the loss can fall to zero. Four fixed batches are cycled, as in the
//! reference, so that data never costs time.

use anyhow::Result;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::model::{Gpt, HostParams, ParamSpec};
use crate::train::Task;

pub struct PermutationTask {
    pub gpt: Gpt,
    /// Host copies of the (input, target) batches, `[batch, seq]` each.
    batches: Vec<(Vec<i64>, Vec<i64>)>,
    shape: [usize; 2],
    next: usize,
}

impl PermutationTask {
    pub fn new(gpt: Gpt, batch: usize, seed: u64) -> Self {
        let (vocab, seq) = (gpt.shape.vocab_size, gpt.shape.block_size);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut perm: Vec<usize> = (0..vocab).collect();
        perm.shuffle(&mut rng);
        let batches = (0..4)
            .map(|_| {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for _ in 0..batch {
                    let mut cur = rng.random_range(0..vocab);
                    for _ in 0..seq {
                        let nxt = perm[cur];
                        x.push(cur as i64);
                        y.push(nxt as i64);
                        cur = nxt;
                    }
                }
                (x, y)
            })
            .collect();
        Self {
            gpt,
            batches,
            shape: [batch, seq],
            next: 0,
        }
    }
}

impl Task for PermutationTask {
    type Batch = (Tensor<2, Int>, Tensor<2, Int>);

    fn specs(&self) -> &[ParamSpec] {
        self.gpt.specs()
    }

    fn init_params(&self, seed: u64) -> HostParams {
        self.gpt.init(seed)
    }

    fn next_batch(&mut self, device: &Device) -> Result<Self::Batch> {
        let (x, y) = &self.batches[self.next % self.batches.len()];
        self.next += 1;
        Ok((
            Tensor::from_data(TensorData::new(x.clone(), self.shape), device),
            Tensor::from_data(TensorData::new(y.clone(), self.shape), device),
        ))
    }

    fn batch_tokens(&self, batch: &Self::Batch) -> usize {
        batch.0.shape().num_elements()
    }

    fn loss(&self, params: &[Tensor<1>], batch: &Self::Batch, train: bool) -> Tensor<1> {
        let p = if train { self.gpt.shape.dropout } else { 0.0 };
        self.gpt.loss(params, batch.0.clone(), batch.1.clone(), p)
    }

    fn val_loss(&self, _params: &[Tensor<1>], _device: &Device) -> Result<f64> {
        Ok(f64::NAN)
    }

    fn cursor(&self) -> serde_json::Value {
        serde_json::json!(self.next)
    }

    fn restore_cursor(&mut self, cursor: &serde_json::Value) -> Result<()> {
        self.next = cursor.as_u64().unwrap_or(0) as usize;
        Ok(())
    }
}
