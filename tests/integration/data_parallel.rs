//! Data-parallel training through `lmtrain train` (issue 19) on the CPU: `device = ["cpu",
//! "cpu"]` runs two simulated workers with the in-process all-reduce stand-in. On the linear
//! BC testbed (a per-pair mean loss, no dropout) two workers with half of every micro-batch
//! take the steps one worker takes with all of it, and a checkpoint written by two workers
//! resumes with one on the same trajectory.

use std::path::Path;

use crate::common::{lmtrain, metrics, repo, run_err, run_ok};

/// The linear testbed, shortened: AdamW with clipping, two micro-batches per step, the EMA
/// past its burn-in, logs every 5 steps, validation and rollouts every 10.
fn args(out: &Path, name: &str, device: &str, steps: u64) -> Vec<String> {
    let mut a = vec![
        "--config".to_string(),
        repo().join("configs/bc/linear.toml").display().to_string(),
    ];
    for s in [
        format!("train.out_dir={:?}", out.display().to_string()),
        format!("train.run_name={name:?}"),
        format!("device={device}"),
        format!("train.max_steps={steps}"),
        "train.log_every=5".into(),
        "linear.samples=2000".into(),
        "optim.kind=\"adamw\"".into(),
        "optim.lr=0.01".into(),
        "optim.grad_clip=0.5".into(),
        "optim.grad_accum=2".into(),
        "ema.burn_in=5".into(),
        "eval.val_every=10".into(),
        "eval.rollout_every=10".into(),
        "checkpoint.every=10".into(),
    ] {
        a.push("--set".into());
        a.push(s);
    }
    a
}

/// Every row of `b` matches `a`'s row of the same step: the counters exactly, the losses
/// within 1e-5 relative, the other metrics (gradient norm, rollout costs) within 1e-4.
fn assert_same_rows(a: &[serde_json::Value], b: &[serde_json::Value], what: &str) {
    assert!(!b.is_empty(), "{what}: no rows");
    for rb in b {
        let step = rb["step"].as_u64().unwrap();
        let ra = a
            .iter()
            .find(|r| r["step"].as_u64() == Some(step))
            .unwrap_or_else(|| panic!("{what}: no row for step {step}"));
        let (oa, ob) = (ra.as_object().unwrap(), rb.as_object().unwrap());
        let keys = |o: &serde_json::Map<String, serde_json::Value>| {
            let mut k: Vec<String> = o.keys().filter(|k| !k.contains("per_s")).cloned().collect();
            k.retain(|k| k != "rollout_seconds");
            k.sort();
            k
        };
        assert_eq!(keys(oa), keys(ob), "{what}: step {step}'s keys differ");
        for k in keys(oa) {
            let (x, y) = (&oa[&k], &ob[&k]);
            if matches!(k.as_str(), "step" | "tokens" | "lr") || !x.is_f64() {
                assert_eq!(x, y, "{what}: step {step}, {k}");
                continue;
            }
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let tol = if k.contains("loss") { 1e-5 } else { 1e-4 };
            assert!(
                (x - y).abs() <= tol * x.abs().max(1e-12),
                "{what}: step {step}, {k}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn two_cpu_workers_reproduce_one_and_resume_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    run_ok(lmtrain().args(args(out, "one", "\"cpu\"", 30)));
    run_ok(lmtrain().args(args(out, "two", "[\"cpu\", \"cpu\"]", 30)));
    let one = metrics(&out.join("one"));
    let two = metrics(&out.join("two"));
    assert_eq!(one.len(), two.len());
    assert!(one.iter().any(|r| r.get("train_loss").is_some()));
    assert!(one.iter().any(|r| r.get("val_loss_ema").is_some()));
    assert_same_rows(&one, &two, "2 workers vs 1");
    let log = std::fs::read_to_string(out.join("two/train.log")).unwrap();
    assert!(log.contains("2 simulated workers"), "{log}");

    // Two workers to step 20, then one from their checkpoint to step 30.
    run_ok(lmtrain().args(args(out, "split", "[\"cpu\", \"cpu\"]", 20)));
    let split = out.join("split");
    run_ok(lmtrain().args([
        "train",
        "--resume",
        &split.display().to_string(),
        "--set",
        "device=\"cpu\"",
        "--set",
        "train.max_steps=30",
    ]));
    let rows = metrics(&split);
    assert_eq!(rows.last().unwrap()["step"].as_u64(), Some(30));
    assert!(rows.iter().any(|r| r["step"].as_u64() == Some(25)));
    assert_same_rows(&one, &rows, "2 workers to 20, resumed with 1");
}

/// A micro-batch that does not split over the workers, and a device list that is neither
/// CUDA devices nor the CPU stand-in, are refused with the keys to change.
#[test]
fn bad_data_parallel_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(tmp.path(), "odd", "[\"cpu\", \"cpu\"]", 2);
    a.extend(["--set".into(), "train.batch_size=7".into()]);
    let e = run_err(lmtrain().args(a));
    assert!(
        e.contains("train.batch_size") && e.contains("device"),
        "{e}"
    );
    let e = run_err(lmtrain().args(args(tmp.path(), "mixed", "[\"cuda:0\", \"cpu\"]", 2)));
    assert!(e.contains("device"), "{e}");
}
