//! The linear-system testbed (`configs/bc/linear.toml`) shows the paper's phenomenon in a
//! second: SGD noise barely moves the one-step BC loss but swings the closed-loop rollout cost,
//! more at the longer horizon, and the EMA of the iterates takes most of the swing away.

use crate::common::{lmtrain, metrics, repo, run_ok};
use lmtrain::eval::oscillation::{oscillation_index, DEFAULT_TREND_WINDOW};

/// The oscillation index of `key` over the evaluations after the fast transient (step > 2000,
/// as the numpy reference).
fn index(rows: &[serde_json::Value], key: &str) -> f64 {
    let series: Vec<f64> = rows
        .iter()
        .filter(|r| r["step"].as_u64().unwrap() > 2000)
        .filter_map(|r| r.get(key).and_then(|v| v.as_f64()))
        .collect();
    assert!(series.len() >= 100, "{key}: {} evaluations", series.len());
    oscillation_index(&series, DEFAULT_TREND_WINDOW).unwrap()
}

#[test]
fn linear_testbed_amplifies_sgd_noise_and_ema_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(
        lmtrain()
            .arg("--config")
            .arg(repo().join("configs/bc/linear.toml"))
            .args([
                "--set",
                &format!("train.out_dir={:?}", tmp.path().display().to_string()),
            ])
            .args(["--set", "train.run_name=\"linear\""]),
    );
    let rows = metrics(&tmp.path().join("linear"));
    let bc = index(&rows, "val_loss_raw");
    let (h10, h100) = (
        index(&rows, "rollout_cost_h10_raw"),
        index(&rows, "rollout_cost_h100_raw"),
    );
    let h100_ema = index(&rows, "rollout_cost_h100_ema");
    // The thresholds are the issue's, not fitted to this run. The numpy reference
    // (../shared/reference/linear_gva_toy.py, same system and SGD) prints indices 0.0135 (BC
    // loss), 0.279 (H = 10) and 17.2 (H = 100) raw, 1.05 EMA at H = 100: the H = 100 cost
    // swings ~1,300× more than the BC loss and EMA divides it by 16. lmtrain's testbed gave
    // 920–1,100× and 7.7–10× over train.seed 0–2. So ≥ 10× and ≥ 3× leave a wide margin for
    // seeds and rounding, and fail when the phenomenon is gone: an EMA that tracks the iterate
    // (ratio 1), or a cost that is not closed-loop (it would not grow with H).
    assert!(
        h10 < h100,
        "the raw cost's index does not grow with H: {h10} at 10, {h100} at 100"
    );
    assert!(
        h100 >= 10.0 * bc,
        "H = 100 index {h100} is not ≥ 10× the BC loss's {bc}"
    );
    assert!(
        h100 >= 3.0 * h100_ema,
        "EMA lowered the H = 100 index only from {h100} to {h100_ema}"
    );
}
