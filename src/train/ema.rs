//! The exponential moving average of iterates from "Butterfly Effects of SGD Noise"
//! (Block et al., ICLR 2024): θ̄ ← (1 − β_t)·θ̄ + β_t·θ.

use burn::tensor::Tensor;

use crate::config::{EmaConfig, EmaKind};

/// β_t for optimizer step `t`, or `None` when the EMA is not updated at this step.
///
/// For t ≤ t₀ (`burn_in`) the EMA is a copy of the iterate (β = 1). After that,
/// β_t = max(min_beta, (ρ + t − t₀)^(−κ)) in poly mode, or 1 − decay in constant mode.
/// With `every = k` only steps divisible by k update, with β evaluated at that t.
pub fn beta_at(t: u64, c: &EmaConfig) -> Option<f64> {
    if t <= c.burn_in {
        return Some(1.0);
    }
    if !t.is_multiple_of(c.every) {
        return None;
    }
    Some(match c.kind {
        EmaKind::Poly => (c.offset + (t - c.burn_in) as f64)
            .powf(-c.power)
            .max(c.min_beta)
            .min(1.0),
        EmaKind::Constant => 1.0 - c.decay,
    })
}

/// Applies one EMA update in place, outside autodiff.
pub fn update(ema: &mut [Tensor<1>], params: &[Tensor<1>], beta: f64) {
    for (e, p) in ema.iter_mut().zip(params) {
        *e = if beta >= 1.0 {
            p.clone()
        } else {
            e.clone() * (1.0 - beta) + p.clone() * beta
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn cfg() -> EmaConfig {
        EmaConfig {
            enabled: true,
            kind: EmaKind::Poly,
            power: 0.5,
            offset: 10.0,
            burn_in: 3,
            min_beta: 0.0,
            decay: 0.9,
            every: 1,
        }
    }

    #[test]
    fn beta_follows_the_papers_schedule() {
        let c = cfg();
        assert_eq!(beta_at(1, &c), Some(1.0));
        assert_eq!(beta_at(3, &c), Some(1.0));
        assert!((beta_at(4, &c).unwrap() - 11f64.powf(-0.5)).abs() < 1e-15);
        // ρ + t − t₀ = 10 + 93 − 3 = 100, so β = 100^(−1/2).
        assert!((beta_at(93, &c).unwrap() - 0.1).abs() < 1e-15);
        let floored = EmaConfig {
            min_beta: 0.15,
            ..cfg()
        };
        assert_eq!(beta_at(93, &floored), Some(0.15));
        let every = EmaConfig { every: 4, ..cfg() };
        assert_eq!(beta_at(5, &every), None);
        assert!((beta_at(8, &every).unwrap() - 15f64.powf(-0.5)).abs() < 1e-15);
        let constant = EmaConfig {
            kind: EmaKind::Constant,
            ..cfg()
        };
        assert!((beta_at(50, &constant).unwrap() - 0.1).abs() < 1e-15);
    }

    /// The recursion against its closed form: θ̄_T = Σ_t w_t θ_t with
    /// w_t = β_t · Π_{s>t} (1 − β_s), on the sequence θ_t = t².
    #[test]
    fn update_matches_closed_form() {
        let c = EmaConfig {
            burn_in: 2,
            offset: 2.0,
            ..cfg()
        };
        let device = Device::flex();
        let steps = 12u64;
        let theta = |t: u64| (t * t) as f32;
        let mut ema = vec![Tensor::<1>::from_floats([0.0], &device)];
        for t in 1..=steps {
            let p = vec![Tensor::<1>::from_floats([theta(t)], &device)];
            if let Some(b) = beta_at(t, &c) {
                update(&mut ema, &p, b);
            }
        }
        let got: f32 = ema[0].clone().into_scalar();
        let mut expected = 0.0f64;
        for t in 1..=steps {
            let b = beta_at(t, &c).unwrap();
            let tail: f64 = ((t + 1)..=steps)
                .map(|s| 1.0 - beta_at(s, &c).unwrap())
                .product();
            expected += b * tail * theta(t) as f64;
        }
        assert!(
            (got as f64 - expected).abs() < 1e-3 * expected.abs(),
            "got {got}, closed form {expected}"
        );
    }
}
