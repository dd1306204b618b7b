//! Minibatches that walk a permutation of all training pairs, drawn afresh each epoch from
//! (seed, epoch): the cursor `{epoch, position}` is all a checkpoint needs for an exact resume.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Where the minibatch stream stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BcCursor {
    pub epoch: u64,
    /// Pairs of this epoch's permutation already used.
    pub position: u64,
}

pub struct Minibatches {
    n: usize,
    seed: u64,
    pub cursor: BcCursor,
    order: Vec<usize>,
    order_epoch: Option<u64>,
}

impl Minibatches {
    /// Over `n` pairs, shuffled from `seed`.
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            n,
            seed,
            cursor: BcCursor::default(),
            order: Vec::new(),
            order_epoch: None,
        }
    }

    fn permutation(&mut self) -> &[usize] {
        if self.order_epoch != Some(self.cursor.epoch) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::train::step::step_seed(
                self.seed,
                self.cursor.epoch,
                0xBC,
            ));
            self.order = (0..self.n).collect();
            self.order.shuffle(&mut rng);
            self.order_epoch = Some(self.cursor.epoch);
        }
        &self.order
    }

    /// The cursor as a checkpoint stores it.
    pub fn cursor_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cursor).unwrap_or(serde_json::Value::Null)
    }

    /// Moves to a cursor a checkpoint stored.
    pub fn restore_json(&mut self, cursor: &serde_json::Value) -> anyhow::Result<()> {
        self.cursor = serde_json::from_value::<BcCursor>(cursor.clone())
            .map_err(|e| anyhow::anyhow!("the checkpoint's BC data cursor is malformed: {e}"))?;
        Ok(())
    }

    /// The indices of the next `batch` pairs (crossing into the next epoch when this one runs
    /// out).
    pub fn next(&mut self, batch: usize) -> Vec<usize> {
        let mut idx = Vec::with_capacity(batch);
        while idx.len() < batch {
            if self.cursor.position as usize >= self.n {
                self.cursor.epoch += 1;
                self.cursor.position = 0;
            }
            let start = self.cursor.position as usize;
            let take = (batch - idx.len()).min(self.n - start);
            let order = self.permutation();
            idx.extend_from_slice(&order[start..start + take]);
            self.cursor.position += take as u64;
        }
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_once_per_epoch_and_resumable() {
        let mut m = Minibatches::new(10, 3);
        let mut first: Vec<usize> = (0..3).flat_map(|_| m.next(3)).collect();
        first.extend(m.next(1));
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        // A fresh stream moved to the cursor continues identically (into epoch 1).
        let saved = m.cursor;
        let a = m.next(7);
        let mut r = Minibatches::new(10, 3);
        r.cursor = saved;
        assert_eq!(r.next(7), a);
        assert_eq!(r.cursor.epoch, 1);
    }
}
