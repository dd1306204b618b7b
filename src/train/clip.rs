//! Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_` computes it: one L2 norm
//! over all parameters together (burn's own clipping is per tensor).

use burn::tensor::Tensor;

/// The global L2 norm of `grads`, as a one-element tensor (no host sync).
/// `grads` must not be empty (every model has parameters).
pub fn global_norm(grads: &[Tensor<1>]) -> Tensor<1> {
    // Every tensor's sum of squares is queued before any of them is added: queued alternately,
    // each one-element add would be a kernel launch of its own on the GPU; queued together,
    // burn's fusion merges the adds.
    let squares: Vec<Tensor<1>> = grads
        .iter()
        .map(|g| (g.clone() * g.clone()).sum())
        .collect();
    squares
        .into_iter()
        .reduce(|a, b| a + b)
        .expect("a model has at least one parameter")
        .sqrt()
}

/// Scales `grads` by min(1, max_norm / (norm + 1e-6)), PyTorch's formula, without a host sync,
/// when `max_norm` > 0. Returns the pre-clip norm, or `None` when clipping is off and
/// `want_norm` is false: the norm costs a reduction per parameter tensor (two kernel launches
/// each on the GPU), which a step that neither clips nor logs should not pay.
pub fn clip_global(grads: &mut [Tensor<1>], max_norm: f64, want_norm: bool) -> Option<Tensor<1>> {
    if max_norm <= 0.0 && !want_norm {
        return None;
    }
    let norm = global_norm(grads);
    if max_norm > 0.0 {
        let coef = (norm.clone() + 1e-6)
            .recip()
            .mul_scalar(max_norm)
            .clamp_max(1.0);
        for g in grads.iter_mut() {
            *g = g.clone() * coef.clone();
        }
    }
    Some(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn vals(t: &Tensor<1>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn one_norm_over_all_parameters() {
        let d = Device::flex();
        let mut g = vec![
            Tensor::<1>::from_floats([3.0, 0.0], &d),
            Tensor::<1>::from_floats([0.0, 4.0, 0.0], &d),
        ];
        let norm: f32 = clip_global(&mut g, 1.0, false).unwrap().into_scalar();
        assert!((norm - 5.0).abs() < 1e-6);
        // Both tensors scaled by the same coefficient 1/5: per-tensor clipping would give
        // [1, 0] and [0, 1] instead.
        let a = vals(&g[0]);
        let b = vals(&g[1]);
        assert!((a[0] - 0.6).abs() < 1e-5, "{a:?}");
        assert!((b[1] - 0.8).abs() < 1e-5, "{b:?}");
    }

    #[test]
    fn below_threshold_is_untouched() {
        let d = Device::flex();
        let mut g = vec![Tensor::<1>::from_floats([0.3, 0.4], &d)];
        let norm: f32 = clip_global(&mut g, 1.0, false).unwrap().into_scalar();
        assert!((norm - 0.5).abs() < 1e-6);
        assert_eq!(vals(&g[0]), vec![0.3, 0.4]);
    }

    #[test]
    fn without_clipping_the_norm_is_computed_only_on_request() {
        let d = Device::flex();
        let mut g = vec![Tensor::<1>::from_floats([30.0, 40.0], &d)];
        assert!(clip_global(&mut g, 0.0, false).is_none());
        let norm: f32 = clip_global(&mut g, 0.0, true).unwrap().into_scalar();
        assert!((norm - 50.0).abs() < 1e-4);
        assert_eq!(vals(&g[0]), vec![30.0, 40.0]);
    }
}
