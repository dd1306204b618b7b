//! Mean cross-entropy over the vocabulary with a closed-form backward pass.
//!
//! `log_softmax` composed of plain ops keeps several `[rows, vocab]` tensors for autodiff and
//! differentiates max, subtract, exp, sum, log and gather one by one. Here the forward keeps the
//! logits and one log-sum-exp per row, and the backward is `(softmax − one_hot)·dL/rows`: one
//! element-wise pass plus a scatter of the targets.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Shape, TensorMetadata};
use burn::tensor::{FloatDType, IndexingUpdateOp};

/// What the backward pass needs: the logits, the targets and each row's log-sum-exp.
#[derive(Clone, Debug)]
pub struct Saved<B: Backend> {
    pub logits: FloatTensor<B>,
    pub targets: IntTensor<B>,
    pub lse: FloatTensor<B>,
}

fn as_column<B: Backend>(targets: IntTensor<B>) -> IntTensor<B> {
    let rows = targets.shape()[0];
    B::int_reshape(targets, Shape::new([rows, 1]))
}

/// The mean over rows of `logsumexp(logits_i) − logits_i[target_i]` (shape `[1]`), for `logits`
/// `[rows, vocab]` and `targets` `[rows]`, and the log-sum-exp of each row (`[rows, 1]`).
pub fn forward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let max = B::float_max_dim(logits.clone(), 1);
    let sum = B::float_sum_dim(B::float_exp(B::float_sub(logits.clone(), max.clone())), 1);
    let lse = B::float_add(max, B::float_log(sum));
    let picked = B::float_gather(1, logits, as_column::<B>(targets));
    let loss = B::float_mean(B::float_sub(lse.clone(), picked));
    (loss, lse)
}

/// The gradient of the logits for the loss gradient `dloss` (shape `[1]`).
pub fn backward<B: Backend>(saved: Saved<B>, dloss: FloatTensor<B>) -> FloatTensor<B> {
    let Saved {
        logits,
        targets,
        lse,
    } = saved;
    let rows = logits.shape()[0];
    let device = logits.device();
    let dtype = FloatDType::from(logits.dtype());
    let probs = B::float_exp(B::float_sub(logits, lse));
    let minus_ones = B::float_full(Shape::new([rows, 1]), (-1.0f32).into(), &device, dtype);
    let residual = B::float_scatter(
        1,
        probs,
        as_column::<B>(targets),
        minus_ones,
        IndexingUpdateOp::Add,
    );
    let scale = B::float_div_scalar(
        B::float_reshape(dloss, Shape::new([1, 1])),
        (rows as f32).into(),
    );
    B::float_mul(residual, scale)
}
