//! The exponential moving average of iterates from "Butterfly Effects of SGD Noise"
//! (Block et al., ICLR 2024): θ̄ ← (1 − β_t)·θ̄ + β_t·θ; and its bias-corrected variant, BEMA.
//!
//! # BEMA (`ema.kind = "bema"`)
//!
//! Block & Zhang, "EMA Without the Lag: Bias-Corrected Iterate Averaging Schemes" (2025,
//! arXiv 2508.00180; author code github.com/abblock/bema, `src/core_online.py`, `BEMACallback`):
//!
//! ```text
//! BEMA_t = α_t·(θ_t − θ₀) + EMA_t,   α_t = (ρ + γ·(t − t₀))^(−η)
//! EMA_t  = (1 − β_t)·EMA_{t−1} + β_t·θ_t,   β_t = max(min_beta, (ρ + γ·(t − t₀))^(−κ))
//! ```
//!
//! with η = `ema.bias_power` (default 0.2), γ = `ema.multiplier` (default 1), ρ = `ema.offset`,
//! κ = `ema.power`, t₀ = `ema.burn_in`, and the EMA updated on the steps divisible by
//! `ema.every`. θ₀ is the iterate at the end of the burn-in, θ_{t₀} (the initial weights when
//! t₀ = 0).
//!
//! - **Which t.** t is the optimizer step, and both exponents run on the steps since the
//!   burn-in, t − t₀, as in the author code (`t = step − update_after + scaling_lag`, then
//!   `(1 + γ·t)^(−power)`): its `(1 + γ·(t − τ + lag))` is the formula above with
//!   ρ = 1 + γ·lag, so its defaults (lag 10, γ 1, κ 0.5, η 0.2) are `offset = 11` here, where the
//!   default ρ is the plain EMA's 10. TRL's port of that code (`trl.BEMACallback`) writes
//!   (ρ + γ·t) with ρ = lag = 10 but puts the absolute step in t. The EMA part is the existing
//!   poly schedule (`kind = "poly"`, the same time origin) with t − t₀ scaled by γ, so at the
//!   default γ = 1 a BEMA run carries exactly the EMA_t of a plain-EMA run with the same config,
//!   and only the evaluated weights differ.
//! - **Burn-in.** For t ≤ t₀ the EMA is the iterate (β = 1) and θ₀ follows it, so BEMA_t = θ_t;
//!   θ₀ stops at θ_{t₀}. The author code snapshots θ₀ and the EMA at the first step ≥ τ: the
//!   same θ₀.
//! - **Between updates** (`every = k > 1`): the author code refreshes its BEMA copy only on
//!   update steps and evaluates that copy in between; lmtrain evaluates the formula at the step
//!   asked, with the current θ_t and α_t and the EMA of the last update. On update steps the two
//!   agree.
//! - **What is kept.** The recursion continues from the plain EMA_t, never from BEMA_t: the
//!   trainer keeps EMA_t and θ₀ and computes BEMA_t when it evaluates or checkpoints. A BEMA run's
//!   `*_ema` metrics, `val_loss_ema` and checkpoint `ema.*` tensors are BEMA_t; its checkpoints
//!   also hold θ₀ (`ema0.*`) and EMA_t (`ema_plain.*`) for an exact resume
//!   (docs/checkpoint-format.md, version 4). The raw weights never depend on the EMA, so they
//!   equal a plain-EMA run's with the same seed.

use burn::tensor::Tensor;

use crate::config::{EmaConfig, EmaKind};

/// β_t for optimizer step `t`, or `None` when the EMA is not updated at this step.
///
/// For t ≤ t₀ (`burn_in`) the EMA is a copy of the iterate (β = 1). After that,
/// β_t = max(min_beta, (ρ + t − t₀)^(−κ)) in poly mode, max(min_beta, (ρ + γ(t − t₀))^(−κ)) in
/// BEMA mode, or 1 − decay in constant mode. With `every = k` only steps divisible by k update,
/// with β evaluated at that t.
pub fn beta_at(t: u64, c: &EmaConfig) -> Option<f64> {
    if t <= c.burn_in {
        return Some(1.0);
    }
    if !t.is_multiple_of(c.every) {
        return None;
    }
    let since = (t - c.burn_in) as f64;
    let poly = |base: f64| base.powf(-c.power).max(c.min_beta).min(1.0);
    Some(match c.kind {
        EmaKind::Poly => poly(c.offset + since),
        EmaKind::Bema { multiplier, .. } => poly(c.offset + multiplier * since),
        EmaKind::Constant => 1.0 - c.decay,
    })
}

/// BEMA's α_t = (ρ + γ(t − t₀))^(−η) for t > t₀; `None` for other kinds and for t ≤ t₀, where
/// BEMA_t is the EMA (= θ_t). Defined at every step, updates or not.
pub fn alpha_at(t: u64, c: &EmaConfig) -> Option<f64> {
    match c.kind {
        EmaKind::Bema {
            bias_power,
            multiplier,
        } if t > c.burn_in => {
            Some((c.offset + multiplier * (t - c.burn_in) as f64).powf(-bias_power))
        }
        _ => None,
    }
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

/// α·(θ − θ₀) + EMA, per tensor.
pub fn bias_corrected(
    ema: &[Tensor<1>],
    params: &[Tensor<1>],
    theta0: &[Tensor<1>],
    alpha: f64,
) -> Vec<Tensor<1>> {
    ema.iter()
        .zip(params)
        .zip(theta0)
        .map(|((e, p), t0)| (p.clone() - t0.clone()) * alpha + e.clone())
        .collect()
}

/// BEMA's state besides the EMA itself: θ₀.
#[derive(Clone)]
pub struct Bema {
    pub theta0: Vec<Tensor<1>>,
}

impl Bema {
    /// The state at step `step` with iterate `params`, when no θ₀ was saved: valid only while
    /// `step ≤ t₀`, where θ₀ is the iterate (step 0: the initial weights).
    pub fn within_burn_in(params: &[Tensor<1>]) -> Self {
        Self {
            theta0: params.to_vec(),
        }
    }

    /// After optimizer step `t` (the EMA already updated): θ₀ follows the iterate up to and
    /// including t₀.
    pub fn after_step(&mut self, t: u64, params: &[Tensor<1>], c: &EmaConfig) {
        if t <= c.burn_in {
            self.theta0 = params.to_vec();
        }
    }

    /// BEMA_t from the EMA and the iterate at step `t`.
    pub fn weights(
        &self,
        t: u64,
        c: &EmaConfig,
        ema: &[Tensor<1>],
        params: &[Tensor<1>],
    ) -> Vec<Tensor<1>> {
        match alpha_at(t, c) {
            Some(alpha) => bias_corrected(ema, params, &self.theta0, alpha),
            None => ema.to_vec(),
        }
    }
}

/// The weights a run evaluates, logs and checkpoints as its EMA at step `t`: the EMA itself, or
/// BEMA_t when `bema` is given.
pub fn evaluated(
    t: u64,
    c: &EmaConfig,
    ema: &[Tensor<1>],
    params: &[Tensor<1>],
    bema: Option<&Bema>,
) -> Vec<Tensor<1>> {
    match bema {
        Some(b) => b.weights(t, c, ema, params),
        None => ema.to_vec(),
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

    fn bema(bias_power: f64, multiplier: f64) -> EmaConfig {
        EmaConfig {
            kind: EmaKind::Bema {
                bias_power,
                multiplier,
            },
            ..cfg()
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

    #[test]
    fn bema_schedules_follow_the_formula() {
        let c = bema(0.3, 2.0);
        // Burn-in (t ≤ t₀ = 3): β = 1, no α (BEMA is the iterate).
        assert_eq!(beta_at(3, &c), Some(1.0));
        assert_eq!(alpha_at(3, &c), None);
        // ρ + γ(t − t₀) = 10 + 2·1 = 12.
        assert!((beta_at(4, &c).unwrap() - 12f64.powf(-0.5)).abs() < 1e-15);
        assert!((alpha_at(4, &c).unwrap() - 12f64.powf(-0.3)).abs() < 1e-15);
        // 10 + 2·(48 − 3) = 100.
        assert!((beta_at(48, &c).unwrap() - 0.1).abs() < 1e-15);
        assert!((alpha_at(48, &c).unwrap() - 100f64.powf(-0.3)).abs() < 1e-15);
        // α is defined between EMA updates too; β only on them.
        let every = EmaConfig { every: 4, ..c };
        assert_eq!(beta_at(5, &every), None);
        assert!((alpha_at(5, &every).unwrap() - 14f64.powf(-0.3)).abs() < 1e-15);
        // γ = 1: the EMA part is the plain poly schedule, bit for bit.
        let plain = bema(0.2, 1.0);
        for t in 1..200 {
            assert_eq!(beta_at(t, &plain), beta_at(t, &cfg()), "t = {t}");
        }
        // Other kinds have no α.
        assert_eq!(alpha_at(50, &cfg()), None);
    }

    /// BEMA_t = α_t(θ_t − θ₀) + EMA_t as the trainer computes it (EMA updates, θ₀ bookkeeping,
    /// on-demand correction), against the formula evaluated by hand at every step: EMA_t as the
    /// weighted sum Σ_s w_s θ_s with w_s = β_s Π_{s<r≤t}(1 − β_r), θ₀ = θ_{min(t, t₀)}, and
    /// α_t = (ρ + γ(t − t₀))^(−η). Across the burn-in boundary, with `every = 2`, γ ≠ 1, and
    /// with t₀ = 0 (θ₀ = the initial weights).
    #[test]
    fn bema_matches_closed_form() {
        let device = Device::flex();
        let (rho, kappa, eta, gamma, every) = (2.0, 0.5, 0.2, 1.5, 2u64);
        // A two-coordinate iterate sequence, θ_0 being the initial weights.
        let theta = |t: u64| [(t * t) as f64 * 0.5 + 1.0, 3.0 - t as f64];
        let steps = 13u64;
        for burn_in in [0u64, 4] {
            let c = EmaConfig {
                kind: EmaKind::Bema {
                    bias_power: eta,
                    multiplier: gamma,
                },
                power: kappa,
                offset: rho,
                burn_in,
                every,
                ..cfg()
            };
            let tensor = |v: [f64; 2]| {
                vec![Tensor::<1>::from_floats(
                    [v[0] as f32, v[1] as f32],
                    &device,
                )]
            };
            let mut params = tensor(theta(0));
            let mut ema = params.clone();
            let mut state = Bema::within_burn_in(&params);
            for t in 1..=steps {
                params = tensor(theta(t));
                if let Some(b) = beta_at(t, &c) {
                    update(&mut ema, &params, b);
                }
                state.after_step(t, &params, &c);
                let got: Vec<f32> = evaluated(t, &c, &ema, &params, Some(&state))[0]
                    .clone()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();

                // By hand.
                let beta = |s: u64| -> f64 {
                    if s <= burn_in {
                        1.0
                    } else if s.is_multiple_of(every) {
                        (rho + gamma * (s - burn_in) as f64).powf(-kappa)
                    } else {
                        0.0
                    }
                };
                let mut want = [0.0f64; 2];
                for (i, w) in want.iter_mut().enumerate() {
                    // The initial weights carry whatever weight the updates left them.
                    let mut ema_t = theta(0)[i] * (1..=t).map(|r| 1.0 - beta(r)).product::<f64>();
                    for s in 1..=t {
                        let tail: f64 = ((s + 1)..=t).map(|r| 1.0 - beta(r)).product();
                        ema_t += beta(s) * tail * theta(s)[i];
                    }
                    *w = if t <= burn_in {
                        theta(t)[i]
                    } else {
                        let alpha = (rho + gamma * (t - burn_in) as f64).powf(-eta);
                        alpha * (theta(t)[i] - theta(burn_in)[i]) + ema_t
                    };
                }
                for i in 0..2 {
                    if t <= burn_in {
                        assert_eq!(
                            got[i] as f64, want[i],
                            "t₀ = {burn_in}, t = {t}: BEMA = θ_t"
                        );
                    } else {
                        assert!(
                            (got[i] as f64 - want[i]).abs() <= 1e-5 * want[i].abs().max(1.0),
                            "t₀ = {burn_in}, t = {t}, coordinate {i}: got {}, closed form {}",
                            got[i],
                            want[i]
                        );
                    }
                }
                // The recursion continues from the plain EMA: it is untouched by the correction.
                let plain: Vec<f32> = ema[0].clone().into_data().try_to_vec::<f32>().unwrap();
                if t > burn_in {
                    assert_ne!(
                        plain, got,
                        "t = {t}: BEMA differs from the EMA after burn-in"
                    );
                }
            }
        }
    }

    /// The `[ema]` table: BEMA's keys, their defaults and ranges, and that other kinds ignore
    /// them (range-checked) and the resolved config writes them for BEMA only.
    #[test]
    fn bema_keys_parse_and_round_trip() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Doc {
            ema: EmaConfig,
        }
        let table = |kind: &str, extra: &str| {
            format!(
                "[ema]\nenabled = true\nkind = \"{kind}\"\npower = 0.5\noffset = 10.0\nburn_in = 100\nmin_beta = 0.0\ndecay = 0.999\nevery = 1\n{extra}"
            )
        };
        let parse = |text: String| toml::from_str::<Doc>(&text).map(|d| d.ema);
        assert_eq!(parse(table("bema", "")).unwrap().kind, EmaKind::BEMA);
        let c = parse(table("bema", "bias_power = 0.4\nmultiplier = 2.0")).unwrap();
        assert_eq!(
            c.kind,
            EmaKind::Bema {
                bias_power: 0.4,
                multiplier: 2.0
            }
        );
        let text = toml::to_string(&Doc { ema: c.clone() }).unwrap();
        assert!(
            text.contains("kind = \"bema\"") && text.contains("bias_power = 0.4"),
            "{text}"
        );
        assert_eq!(parse(text).unwrap(), c);
        // Poly ignores them (so that --set ema.kind=poly works on a BEMA config) and does not
        // write them.
        let p = parse(table("poly", "bias_power = 0.4")).unwrap();
        assert_eq!(p.kind, EmaKind::Poly);
        assert!(!toml::to_string(&Doc { ema: p })
            .unwrap()
            .contains("bias_power"));
        for (extra, key) in [
            ("bias_power = -0.1", "ema.bias_power"),
            ("multiplier = 0.0", "ema.multiplier"),
            ("bias_power = nan", "ema.bias_power"),
        ] {
            for kind in ["bema", "poly"] {
                let err = parse(table(kind, extra)).unwrap_err().to_string();
                assert!(err.contains(key), "{kind}, {extra}: {err}");
            }
        }
        let err = parse(table("bema", "lag = 3")).unwrap_err().to_string();
        assert!(err.contains("lag"), "{err}");
    }
}
