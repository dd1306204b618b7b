//! Learning rate as a function of the optimizer step.

use crate::config::{ScheduleConfig, ScheduleKind};

/// The learning rate at optimizer step `step` (1-based: the first update is step 1).
///
/// Warmup rises linearly to `peak` over `warmup_steps` (reaching it at step `warmup_steps`).
/// Then, over the next `decay_steps` steps, cosine and linear decay to `min_lr` and stay there;
/// wsd holds `peak` for `stable_steps` and then decays linearly; constant holds `peak`.
/// All counts are absolute, so resuming with a larger `max_steps` changes nothing.
pub fn lr_at(step: u64, peak: f64, s: &ScheduleConfig) -> f64 {
    if s.warmup_steps > 0 && step <= s.warmup_steps {
        return peak * step as f64 / s.warmup_steps as f64;
    }
    let after = step.saturating_sub(s.warmup_steps);
    let progress = |start: u64| {
        if s.decay_steps == 0 {
            if after > start {
                1.0
            } else {
                0.0
            }
        } else {
            (after.saturating_sub(start) as f64 / s.decay_steps as f64).min(1.0)
        }
    };
    match s.kind {
        ScheduleKind::Constant => peak,
        ScheduleKind::Cosine => {
            let p = progress(0);
            s.min_lr + 0.5 * (peak - s.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
        }
        ScheduleKind::Linear => peak - (peak - s.min_lr) * progress(0),
        ScheduleKind::Wsd => peak - (peak - s.min_lr) * progress(s.stable_steps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> ScheduleConfig {
        ScheduleConfig {
            kind,
            warmup_steps: 10,
            decay_steps: 100,
            stable_steps: 50,
            min_lr: 0.1,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_is_linear_for_every_kind() {
        for kind in [
            ScheduleKind::Cosine,
            ScheduleKind::Linear,
            ScheduleKind::Wsd,
            ScheduleKind::Constant,
        ] {
            let s = sched(kind);
            assert!(close(lr_at(1, 1.0, &s), 0.1), "{kind:?}");
            assert!(close(lr_at(5, 1.0, &s), 0.5), "{kind:?}");
            assert!(close(lr_at(10, 1.0, &s), 1.0), "{kind:?}");
        }
    }

    #[test]
    fn cosine_hits_midpoint_and_floor() {
        let s = sched(ScheduleKind::Cosine);
        assert!(close(lr_at(60, 1.0, &s), 0.1 + 0.5 * 0.9));
        assert!(close(lr_at(110, 1.0, &s), 0.1));
        assert!(close(lr_at(10_000, 1.0, &s), 0.1));
        // Monotone after warmup.
        let lrs: Vec<f64> = (10..120).map(|t| lr_at(t, 1.0, &s)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn linear_decays_evenly() {
        let s = sched(ScheduleKind::Linear);
        assert!(close(lr_at(35, 1.0, &s), 1.0 - 0.9 * 0.25));
        assert!(close(lr_at(110, 1.0, &s), 0.1));
    }

    #[test]
    fn wsd_holds_then_decays() {
        let s = sched(ScheduleKind::Wsd);
        assert!(close(lr_at(30, 1.0, &s), 1.0));
        assert!(close(lr_at(60, 1.0, &s), 1.0));
        assert!(close(lr_at(110, 1.0, &s), 1.0 - 0.9 * 0.5));
        assert!(close(lr_at(160, 1.0, &s), 0.1));
    }

    #[test]
    fn constant_stays_at_peak() {
        let s = sched(ScheduleKind::Constant);
        assert!(close(lr_at(11, 0.3, &s), 0.3));
        assert!(close(lr_at(1_000_000, 0.3, &s), 0.3));
    }
}
