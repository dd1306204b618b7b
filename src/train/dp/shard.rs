//! Splitting a micro-batch's rows evenly over the data-parallel workers: one producer draws
//! the global micro-batch from the task (so the data cursor means the same for any worker
//! count), worker r takes rows [r·B/W, (r+1)·B/W).

use anyhow::{anyhow, bail, Result};
use burn::tensor::Device;

use crate::bc::task::BcBatch;
use crate::lm::task::LmBatch;

/// A batch whose first dimension is its rows (windows, pairs), which can be cut into equal
/// shards and moved to a worker's device.
pub trait RowSplit: Sized {
    /// The number of rows B (the first dimension).
    fn rows(&self) -> usize;

    /// Rows `[start, start + len)`, on the same device.
    ///
    /// # Errors
    /// When the shard's contents cannot be read (BC: counting the valid positions of a padded
    /// shard reads its mask).
    fn narrow_rows(&self, start: usize, len: usize) -> Result<Self>;

    /// The batch on `device`.
    fn to_device(self, device: &Device) -> Self;

    /// `parts` shards of B/`parts` rows each, in row order (shard r: rows [r·B/parts,
    /// (r+1)·B/parts)).
    ///
    /// # Errors
    /// When `parts` is 0 or B is not divisible by `parts`; the message names `train.batch_size`
    /// and the worker count (the `device` list).
    fn split_rows(self, parts: usize) -> Result<Vec<Self>> {
        let b = self.rows();
        if parts == 0 {
            bail!("data-parallel training needs at least one worker (device)");
        }
        if !b.is_multiple_of(parts) {
            bail!(
                "a micro-batch of {b} rows (train.batch_size) cannot be split evenly over {parts} data-parallel workers (the `device` list): make train.batch_size a multiple of {parts}"
            );
        }
        if parts == 1 {
            return Ok(vec![self]);
        }
        let n = b / parts;
        (0..parts).map(|r| self.narrow_rows(r * n, n)).collect()
    }
}

/// Windows `[B, T]` of input ids and targets.
impl RowSplit for LmBatch {
    fn rows(&self) -> usize {
        self.input.dims()[0]
    }

    fn narrow_rows(&self, start: usize, len: usize) -> Result<Self> {
        Ok(LmBatch {
            input: self.input.clone().narrow(0, start, len),
            target: self.target.clone().narrow(0, start, len),
        })
    }

    fn to_device(self, device: &Device) -> Self {
        LmBatch {
            input: self.input.to_device(device),
            target: self.target.to_device(device),
        }
    }
}

/// Windows `[B, T, ·]` of observations and actions, with the padding mask `[B, T, 1]`.
impl RowSplit for BcBatch {
    fn rows(&self) -> usize {
        self.obs.dims()[0]
    }

    fn narrow_rows(&self, start: usize, len: usize) -> Result<Self> {
        let history = self.obs.dims()[1];
        let mask = self.mask.clone().map(|m| m.narrow(0, start, len));
        let valid = match &mask {
            None => len * history,
            Some(m) => {
                let v: f32 = m
                    .clone()
                    .sum()
                    .try_into_scalar()
                    .map_err(|e| anyhow!("cannot read a BC batch's mask: {e:?}"))?;
                v.round() as usize
            }
        };
        Ok(BcBatch {
            obs: self.obs.clone().narrow(0, start, len),
            actions: self.actions.clone().narrow(0, start, len),
            mask,
            valid,
        })
    }

    fn to_device(self, device: &Device) -> Self {
        BcBatch {
            obs: self.obs.to_device(device),
            actions: self.actions.to_device(device),
            mask: self.mask.map(|m| m.to_device(device)),
            valid: self.valid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Int, Tensor, TensorData};

    fn lm(b: usize) -> LmBatch {
        let d = Device::flex();
        let ids: Vec<i64> = (0..b as i64 * 3).collect();
        LmBatch {
            input: Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [b, 3]), &d),
            target: Tensor::<2, Int>::from_data(TensorData::new(ids, [b, 3]), &d),
        }
    }

    #[test]
    fn shards_are_consecutive_equal_row_ranges() {
        let shards = lm(4).split_rows(2).unwrap();
        let rows: Vec<Vec<i64>> = shards
            .iter()
            .map(|s| {
                s.input
                    .to_data()
                    .convert::<i64>()
                    .try_into_vec::<i64>()
                    .unwrap()
            })
            .collect();
        assert_eq!(rows, vec![vec![0, 1, 2, 3, 4, 5], vec![6, 7, 8, 9, 10, 11]]);
    }

    #[test]
    fn an_uneven_split_names_the_keys() {
        let e = lm(3).split_rows(2).err().unwrap().to_string();
        assert!(
            e.contains("train.batch_size") && e.contains("device"),
            "{e}"
        );
    }
}
