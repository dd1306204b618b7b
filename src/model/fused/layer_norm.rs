//! LayerNorm over the last dimension of `[rows, width]`, with a closed-form backward pass.
//!
//! burn's LayerNorm is composed of about nine ops (mean, subtract, square, mean, add ε, sqrt,
//! divide, scale, shift), and autodiff differentiates each one, keeping their outputs. Here the
//! forward keeps the input and two numbers per row (mean and 1/σ), and the backward is the
//! textbook formula: `dx = (g − mean(g) − x̂·mean(g·x̂))/σ` with `g = dy·γ`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Shape, TensorMetadata};

use super::column_sum::column_sum;

/// What the backward pass needs: the input, its row statistics and the gain.
#[derive(Clone, Debug)]
pub struct Saved<B: Backend> {
    pub x: FloatTensor<B>,
    pub mean: FloatTensor<B>,
    pub rstd: FloatTensor<B>,
    pub gamma: FloatTensor<B>,
}

fn as_row<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let width = t.shape()[0];
    B::float_reshape(t, Shape::new([1, width]))
}

/// `(x − mean)/√(var + ε)·γ + β` for each row of `x`, with the biased variance (as PyTorch);
/// also returns the row means and reciprocal standard deviations, `[rows, 1]` each.
pub fn forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let mean = B::float_mean_dim(x.clone(), 1);
    let centered = B::float_sub(x, mean.clone());
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 1);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, eps.into())));
    let normalized = B::float_mul(centered, rstd.clone());
    let y = B::float_add(
        B::float_mul(normalized, as_row::<B>(gamma)),
        as_row::<B>(beta),
    );
    (y, mean, rstd)
}

/// Gradients `(dx, dγ, dβ)` for the output gradient `dy`.
pub fn backward<B: Backend>(saved: Saved<B>, dy: FloatTensor<B>) -> [FloatTensor<B>; 3] {
    let Saved {
        x,
        mean,
        rstd,
        gamma,
    } = saved;
    let normalized = B::float_mul(B::float_sub(x, mean), rstd.clone());
    let dbeta = column_sum::<B>(dy.clone());
    let dgamma = column_sum::<B>(B::float_mul(dy.clone(), normalized.clone()));
    let g = B::float_mul(dy, as_row::<B>(gamma));
    let g_mean = B::float_mean_dim(g.clone(), 1);
    let gx_mean = B::float_mean_dim(B::float_mul(g.clone(), normalized.clone()), 1);
    let dx = B::float_mul(
        B::float_sub(B::float_sub(g, g_mean), B::float_mul(normalized, gx_mean)),
        rstd,
    );
    [dx, dgamma, dbeta]
}
