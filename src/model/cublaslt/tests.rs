//! The bf16 linear op on the CPU (flex) against burn's own autodiff of the same function in f32.
//!
//! The inputs and the output gradient are drawn bf16-representable, so that the op's casts
//! round nothing and the two sides agree to f32 rounding: a swapped operand, layout or
//! gradient shows as an O(1) difference, not as bf16 noise.

use burn::tensor::{Device, Distribution, FloatDType, Tensor};

use super::linear_bf16;

fn bf16_exact<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
    Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), d)
        .cast(FloatDType::BF16)
        .cast(FloatDType::F32)
}

fn max_rel<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> f32 {
    let diff: f32 = (a.clone() - b.clone()).abs().max().into_scalar();
    let scale: f32 = b.clone().abs().max().into_scalar();
    diff / scale.max(1e-30)
}

/// (y, dx, dw, db) of Σ y∘g for `op`.
fn run(
    op: impl Fn(Tensor<2>, Tensor<2>, Option<Tensor<1>>) -> Tensor<2>,
    x: &Tensor<2>,
    w: &Tensor<2>,
    b: Option<&Tensor<1>>,
    g: &Tensor<2>,
) -> (Tensor<2>, Tensor<2>, Tensor<2>, Option<Tensor<1>>) {
    let (x, w) = (
        x.clone().autodiff().require_grad(),
        w.clone().autodiff().require_grad(),
    );
    let b = b.map(|b| b.clone().autodiff().require_grad());
    let y = op(x.clone(), w.clone(), b.clone());
    let grads = (y.clone() * g.clone().autodiff()).sum().backward();
    (
        y.inner(),
        x.grad(&grads).unwrap(),
        w.grad(&grads).unwrap(),
        b.map(|b| b.grad(&grads).unwrap()),
    )
}

#[test]
fn forward_and_gradients_match_burns_autodiff() {
    let d = Device::flex();
    let (m, k, n) = (6, 5, 7);
    for (w_out_in, bias) in [(false, true), (true, false), (false, false), (true, true)] {
        let x = bf16_exact([m, k], &d);
        let w = bf16_exact(if w_out_in { [n, k] } else { [k, n] }, &d);
        let b = bf16_exact([n], &d);
        let g = bf16_exact([m, n], &d);
        let b_arg = bias.then_some(&b);
        let ours = run(|x, w, b| linear_bf16(x, w, b, w_out_in), &x, &w, b_arg, &g);
        let plain = run(
            |x, w, b| {
                let w = if w_out_in { w.transpose() } else { w };
                let y = x.matmul(w);
                match b {
                    Some(b) => y + b.unsqueeze::<2>(),
                    None => y,
                }
            },
            &x,
            &w,
            b_arg,
            &g,
        );
        let label = format!("w_out_in={w_out_in} bias={bias}");
        assert!(max_rel(&ours.0, &plain.0) < 1e-5, "y, {label}");
        assert!(max_rel(&ours.1, &plain.1) < 1e-5, "dx, {label}");
        assert_eq!(ours.2.dims(), w.dims(), "dw in w's layout, {label}");
        assert!(max_rel(&ours.2, &plain.2) < 1e-5, "dw, {label}");
        if let (Some(a), Some(p)) = (&ours.3, &plain.3) {
            assert!(max_rel(a, p) < 1e-5, "db, {label}");
        }
    }
}

/// With inputs that bf16 does not represent, the op really rounds them (it is not f32 in
/// disguise), by about bf16's half-ulp.
#[test]
fn operands_are_rounded_to_bf16() {
    let d = Device::flex();
    let x = Tensor::<2>::random([8, 16], Distribution::Normal(0.0, 1.0), &d);
    let w = Tensor::<2>::random([16, 4], Distribution::Normal(0.0, 1.0), &d);
    let y = linear_bf16(x.clone(), w.clone(), None, false);
    let rel = max_rel(&y, &x.matmul(w));
    assert!(rel > 1e-5 && rel < 2e-2, "{rel}");
}
