//! Sums over the rows of `[rows, width]`, in two stages when there are many rows.
//!
//! Bias and LayerNorm-gain gradients are sums over every token: `[batch·time, width]` → `[width]`.
//! burn reduces such a tensor in one kernel along its strided axis, which on the GPU gives one
//! unit per few columns and leaves each walking all rows: on the H200 profile of config A these
//! 50 reductions of 16,384 rows took 147 µs each (7.4 ms, 13% of the step), about 20× the time
//! their memory traffic needs. Splitting the rows into `split` blocks first multiplies the
//! parallelism of the first stage by `split` and leaves each unit `rows / split` rows; the
//! second stage sums `split` partial rows. Only the order of the additions changes.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Shape, TensorMetadata};

/// Below this many rows one stage is already short.
const MIN_ROWS_TO_SPLIT: usize = 256;

/// The number of blocks for `rows` rows: the largest divisor of `rows` not above √rows (so both
/// stages walk about √rows rows), or 1 (one stage) for few rows or when no divisor above 1 is
/// at least a quarter of √rows.
pub fn split_for(rows: usize) -> usize {
    if rows < MIN_ROWS_TO_SPLIT {
        return 1;
    }
    let root = (rows as f64).sqrt() as usize;
    let best = (1..=root)
        .rev()
        .find(|d| rows.is_multiple_of(*d))
        .unwrap_or(1);
    if best * 4 >= root {
        best
    } else {
        1
    }
}

/// `[…, width]` → `[width]`: the sum over every dimension but the last, as a [`column_sum`] of
/// the flattened rows (the reshape is free: gradients arrive contiguous).
pub fn last_dim_sum<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let shape = t.shape();
    let width = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / width;
    column_sum::<B>(B::float_reshape(t, Shape::new([rows, width])))
}

/// `[width]` → `[1, …, 1, width]` with `rank` dimensions, to broadcast over the last dimension
/// of a rank-`rank` tensor.
pub fn along_last_dim<B: Backend>(v: FloatTensor<B>, rank: usize) -> FloatTensor<B> {
    let width = v.shape()[0];
    let mut dims = vec![1; rank];
    dims[rank - 1] = width;
    B::float_reshape(v, Shape::from(dims))
}

/// `[rows, width]` → `[width]`: the sum of the rows.
pub fn column_sum<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let rows = t.shape()[0];
    column_sum_split::<B>(t, split_for(rows))
}

/// As [`column_sum`], with the rows cut into `split` blocks (`split` must divide the rows).
pub fn column_sum_split<B: Backend>(t: FloatTensor<B>, split: usize) -> FloatTensor<B> {
    let [rows, width] = [t.shape()[0], t.shape()[1]];
    assert!(
        split >= 1 && rows.is_multiple_of(split),
        "column_sum_split: {split} does not divide {rows} rows"
    );
    let summed = if split == 1 {
        B::float_sum_dim(t, 0)
    } else {
        let blocks = B::float_reshape(t, Shape::new([split, rows / split, width]));
        let partial = B::float_sum_dim(blocks, 1);
        B::float_sum_dim(B::float_reshape(partial, Shape::new([split, width])), 0)
    };
    B::float_reshape(summed, Shape::new([width]))
}

// The two-stage sum itself is checked against burn's `sum_dim` through the ops that use it
// (`check::check_all`: LayerNorm and bias gradients over enough rows to split).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_divisor_near_the_square_root() {
        assert_eq!(split_for(16_384), 128);
        assert_eq!(split_for(2_048), 32);
        assert_eq!(split_for(37), 1);
        assert_eq!(split_for(255), 1);
        // 257 is prime: no useful split.
        assert_eq!(split_for(257), 1);
        for rows in [256, 300, 1_000, 4_096, 12_288, 65_536] {
            let s = split_for(rows);
            assert_eq!(rows % s, 0, "{rows}");
            assert!(s > 1, "{rows}");
        }
    }
}
