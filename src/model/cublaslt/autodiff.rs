//! The autodiff side of [`LtOps`]: [`LtOps::linear_bf16`] (and its no-bias form) as one graph
//! node that keeps the bf16 operands and computes the gradients with the backend's own
//! [`LtOps`] GEMMs, so that a backend overriding them (cuBLASLt on CUDA) runs the backward pass
//! too. The GEMM methods themselves are not differentiable: under autodiff they run on the inner
//! backend with their inputs treated as constants.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend};

use super::ops::{bf16_of, LtOps};

/// What the backward pass needs: the bf16 operands and the weight's layout.
#[derive(Clone, Debug)]
struct Saved<B: Backend> {
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    w_out_in: bool,
}

#[derive(Debug)]
struct LinearBackward;

/// dX = dY·op(W)ᵀ, dW (in W's layout), db = Σ_rows dY, each only where a parent wants it; dW
/// and db by one call when both are wanted (cuBLASLt: one GEMM with the BGRADA epilogue).
fn gradients<B: LtOps, const N: usize>(ops: Ops<Saved<B>, N>, grads: &mut Gradients) {
    let dy = bf16_of::<B>(grads.consume::<B>(&ops.node));
    let s = ops.state;
    let [px, pw, pb] = [0, 1, 2].map(|i| ops.parents.get(i).cloned().flatten());
    if let Some(node) = px {
        grads.register::<B>(
            node.id,
            B::lt_grad_input(dy.clone(), s.w.clone(), s.w_out_in),
        );
    }
    match (pw, pb) {
        (Some(w), Some(b)) => {
            let (dw, db) = B::lt_grad_weight_bias(s.x, dy, s.w_out_in);
            grads.register::<B>(w.id, dw);
            grads.register::<B>(b.id, db);
        }
        (Some(w), None) => grads.register::<B>(w.id, B::lt_grad_weight(s.x, dy, s.w_out_in)),
        (None, Some(b)) => grads.register::<B>(b.id, B::lt_grad_bias(dy)),
        (None, None) => {}
    }
}

impl<B: LtOps> Backward<B, 3> for LinearBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        gradients::<B, 3>(ops, grads);
    }
}

impl<B: LtOps> Backward<B, 2> for LinearBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        gradients::<B, 2>(ops, grads);
    }
}

/// One linear graph node over `nodes` (x, w and, with a bias, b): `forward` gets the bf16 x and
/// w; the node keeps them for the backward pass when any parent is tracked.
fn linear_node<B: LtOps, C: CheckpointStrategy, const N: usize>(
    nodes: [NodeGuard; N],
    x: FloatTensor<Autodiff<B, C>>,
    w: FloatTensor<Autodiff<B, C>>,
    w_out_in: bool,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    LinearBackward: Backward<B, N, State = Saved<B>>,
{
    let xb = bf16_of::<B>(x.into_primitive());
    let wb = bf16_of::<B>(w.into_primitive());
    match LinearBackward
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = forward(xb.clone(), wb.clone());
            prep.finish(
                Saved {
                    x: xb,
                    w: wb,
                    w_out_in,
                },
                y,
            )
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(xb, wb)),
    }
}

impl<B: LtOps, C: CheckpointStrategy> LtOps for Autodiff<B, C> {
    fn lt_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, w_out_in: bool) -> FloatTensor<Self> {
        Self::from_inner(B::lt_linear(
            x.into_primitive(),
            w.into_primitive(),
            w_out_in,
        ))
    }

    fn lt_linear_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::lt_linear_bias(
            x.into_primitive(),
            w.into_primitive(),
            b.into_primitive(),
            w_out_in,
        ))
    }

    fn lt_grad_input(
        dy: FloatTensor<Self>,
        w: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::lt_grad_input(
            dy.into_primitive(),
            w.into_primitive(),
            w_out_in,
        ))
    }

    fn lt_grad_weight(
        x: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::lt_grad_weight(
            x.into_primitive(),
            dy.into_primitive(),
            w_out_in,
        ))
    }

    fn lt_grad_weight_bias(
        x: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        w_out_in: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dw, db) = B::lt_grad_weight_bias(x.into_primitive(), dy.into_primitive(), w_out_in);
        (Self::from_inner(dw), Self::from_inner(db))
    }

    fn lt_grad_bias(dy: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::lt_grad_bias(dy.into_primitive()))
    }

    fn linear_bf16(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), w.node(), b.node()];
        let b = b.into_primitive();
        linear_node::<B, C, 3>(nodes, x, w, w_out_in, |xb, wb| {
            B::lt_linear_bias(xb, wb, b, w_out_in)
        })
    }

    fn linear_bf16_no_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        w_out_in: bool,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), w.node()];
        linear_node::<B, C, 2>(nodes, x, w, w_out_in, |xb, wb| {
            B::lt_linear(xb, wb, w_out_in)
        })
    }
}
