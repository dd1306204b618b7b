//! The autodiff side of [`FusedOps`]: one graph node per op, with the closed-form backward
//! passes of [`attention`], [`layer_norm`] and [`cross_entropy`].

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::{BoolTensor, FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};

use super::{attention, column_sum, cross_entropy, layer_norm, FusedOps};

/// Registers `grads[i]` for each parent that requires a gradient.
fn register<B: Backend, const N: usize>(
    ops: Ops<impl Clone + Send + std::fmt::Debug + 'static, N>,
    grads: &mut Gradients,
    values: [FloatTensor<B>; N],
) {
    for (parent, value) in ops.parents.into_iter().zip(values) {
        if let Some(node) = parent {
            grads.register::<B>(node.id, value);
        }
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend> Backward<B, 3> for AttentionBackward {
    type State = attention::Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<B>(&ops.node);
        let values = attention::backward::<B>(ops.state.clone(), dout);
        register::<B, 3>(ops, grads, values);
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend> Backward<B, 3> for LayerNormBackward {
    type State = layer_norm::Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let values = layer_norm::backward::<B>(ops.state.clone(), dy);
        register::<B, 3>(ops, grads, values);
    }
}

#[derive(Debug)]
struct BiasBackward;

impl<B: Backend> Backward<B, 2> for BiasBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let rank = dy.shape().num_dims();
        let dbias =
            column_sum::along_last_dim::<B>(column_sum::last_dim_sum::<B>(dy.clone()), rank);
        register::<B, 2>(ops, grads, [dy, dbias]);
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: Backend> Backward<B, 1> for CrossEntropyBackward {
    type State = cross_entropy::Saved<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dloss = grads.consume::<B>(&ops.node);
        let dlogits = cross_entropy::backward::<B>(ops.state.clone(), dloss);
        register::<B, 1>(ops, grads, [dlogits]);
    }
}

/// One attention graph node: `forward` gives the output and, where it has one, the per-row
/// log-sum-exp; the backward pass is [`attention::backward`] either way.
fn attention_node<B: Backend, C: CheckpointStrategy>(
    [q, k, v]: [FloatTensor<Autodiff<B, C>>; 3],
    mask: BoolTensor<B>,
    bf16: bool,
    forward: impl FnOnce(
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        BoolTensor<B>,
    ) -> (FloatTensor<B>, Option<FloatTensor<B>>),
) -> FloatTensor<Autodiff<B, C>> {
    match AttentionBackward
        .prepare::<C>([q.node(), k.node(), v.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (q, k, v) = (
                q.primitive().clone(),
                k.primitive().clone(),
                v.primitive().clone(),
            );
            let (out, lse) = forward(q.clone(), k.clone(), v.clone(), mask.clone());
            let saved = attention::Saved {
                q,
                k,
                v,
                mask,
                out: out.clone(),
                lse,
                bf16,
            };
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(
            forward(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
                mask,
            )
            .0,
        ),
    }
}

impl<B: Backend, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn masked_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: BoolTensor<Self>,
        bf16: bool,
    ) -> FloatTensor<Self> {
        attention_node::<B, C>([q, k, v], mask, bf16, |q, k, v, mask| {
            let (out, lse) = attention::forward::<B>(q, k, v, mask, bf16);
            (out, Some(lse))
        })
    }

    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: BoolTensor<Self>,
        bf16: bool,
    ) -> FloatTensor<Self> {
        attention_node::<B, C>([q, k, v], mask, bf16, |q, k, v, _| {
            (attention::flash_forward::<B>(q, k, v, bf16), None)
        })
    }

    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.primitive().clone(), gamma.primitive().clone());
                let (y, mean, rstd) =
                    layer_norm::forward::<B>(x.clone(), gamma.clone(), beta.into_primitive(), eps);
                prep.finish(
                    layer_norm::Saved {
                        x,
                        mean,
                        rstd,
                        gamma,
                    },
                    y,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(
                layer_norm::forward::<B>(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    eps,
                )
                .0,
            ),
        }
    }

    fn add_bias(x: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let sum = B::float_add(x.primitive().clone(), b.primitive().clone());
        // Nothing to keep: the backward pass needs only the output gradient.
        BiasBackward
            .prepare::<C>([x.node(), b.node()])
            .compute_bound()
            .stateless(sum)
    }

    fn mean_cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        match CrossEntropyBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.primitive().clone();
                let (loss, lse) = cross_entropy::forward::<B>(logits.clone(), targets.clone());
                prep.finish(
                    cross_entropy::Saved {
                        logits,
                        targets,
                        lse,
                    },
                    loss,
                )
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(cross_entropy::forward::<B>(logits.into_primitive(), targets).0)
            }
        }
    }
}
