//! Behaviour cloning through the trainer: a tiny run on a dataset collected here from the
//! shipped Hopper expert, its logs and rollouts, an exact resume, and the config's errors.

use std::path::{Path, PathBuf};

use crate::common::{lmtrain, metrics, repo, run_err, run_ok};

/// A dataset of 3 train and 1 validation Hopper episodes from the shipped expert, in `dir`.
fn tiny_dataset(dir: &Path) -> PathBuf {
    let out = dir.join("hopper-data");
    run_ok(
        lmtrain().args([
            "expert",
            "collect",
            "--expert",
            &repo()
                .join("data/experts/hopper.safetensors")
                .display()
                .to_string(),
            "--episodes",
            "3",
            "--val-episodes",
            "1",
            "--seed",
            "0",
            "--out",
            &out.display().to_string(),
        ]),
    );
    out
}

/// The shipped Hopper BC config made tiny: 40 steps, rollouts of 2 episodes × 60 steps at steps
/// 20 and 40 (the policy as shipped; [`small_mlp`] makes it tiny too).
fn tiny_args(data: &Path, out: &Path, name: &str) -> Vec<String> {
    let q = |p: PathBuf| format!("{:?}", p.display().to_string());
    [
        "--config".to_string(),
        repo().join("configs/bc/hopper.toml").display().to_string(),
    ]
    .into_iter()
    .chain(
        [
            format!("data.train_glob={}", q(data.join("train-*.parquet"))),
            format!("data.val_glob={}", q(data.join("validation-*.parquet"))),
            "data.episodes=3".into(),
            "train.max_steps=40".into(),
            "train.batch_size=64".into(),
            "train.log_every=10".into(),
            "optim.lr=1e-2".into(),
            "schedule.warmup_steps=5".into(),
            "ema.burn_in=10".into(),
            "eval.val_every=10".into(),
            "eval.rollout_every=20".into(),
            "eval.rollouts=2".into(),
            "eval.horizon=60".into(),
            "checkpoint.every=20".into(),
            format!("train.out_dir={}", q(out.to_path_buf())),
            format!("train.run_name={name:?}"),
        ]
        .into_iter()
        .flat_map(|s| ["--set".to_string(), s]),
    )
    .collect()
}

#[test]
fn bc_trains_rolls_out_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    run_ok(
        lmtrain()
            .args(tiny_args(&data, tmp.path(), "full"))
            .args(small_mlp()),
    );
    let full = tmp.path().join("full");
    let rows = metrics(&full);
    assert!(
        train_loss(&rows, 40) < 0.5 * train_loss(&rows, 1),
        "the BC loss did not fall"
    );
    for step in [20u64, 40] {
        let r = rows.iter().find(|r| r["step"] == step).unwrap();
        for w in ["raw", "ema"] {
            for k in [
                "return_mean",
                "return_std",
                "return_min",
                "length_mean",
                "fell",
                "action_err",
            ] {
                let key = format!("rollout_{k}_{w}");
                assert!(r.get(&key).is_some(), "step {step} lacks {key}: {r}");
            }
            assert!(r.get(format!("val_loss_{w}")).is_some(), "step {step}: {r}");
        }
        let len = r["rollout_length_mean_raw"].as_f64().unwrap();
        assert!((1.0..=60.0).contains(&len), "{len}");
    }
    let lines = std::fs::read_to_string(full.join("rollouts.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2 * 2 * 2, "{lines}");

    // Stopped at 20 and resumed to 40: the same losses, bit for bit, and the same rollouts.
    let split = stop_and_resume(&data, tmp.path(), &small_mlp());
    assert_eq!(strip_timing(metrics(&split)), strip_timing(rows.clone()));
    assert_eq!(
        std::fs::read_to_string(split.join("rollouts.jsonl")).unwrap(),
        lines
    );
    rollout_reproduces_last_ema(&full, &rows);
    // The landscape probe: 1 random + the gradient direction, 3 points each; its centre (s = 0)
    // is the checkpoint itself, so its BC loss is the run's last val_loss_raw and its return
    // the rollout of the raw weights.
    let land = tmp.path().join("landscape");
    run_ok(lmtrain().args([
        "landscape",
        "--checkpoint",
        &full.display().to_string(),
        "--directions",
        "1",
        "--points",
        "3",
        "--episodes",
        "2",
        "--out",
        &land.display().to_string(),
    ]));
    let csv = std::fs::read_to_string(land.join("landscape.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 6, "{csv}");
    let raw = run_ok(lmtrain().args([
        "rollout",
        "--checkpoint",
        &full.display().to_string(),
        "--episodes",
        "2",
    ]));
    let raw_summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&raw.stdout).lines().last().unwrap()).unwrap();
    let last_val = rows_val_loss(&metrics(&full));
    let centre: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1] == "0").collect();
    assert_eq!(centre.len(), 2, "one s = 0 point per direction: {csv}");
    for r in centre {
        let val: f64 = r[2].parse().unwrap();
        assert!(
            (val - last_val).abs() < 1e-5 * last_val.max(1e-3),
            "{val} vs {last_val}"
        );
        let ret: f64 = r[3].parse().unwrap();
        let want = raw_summary["rollout_return_mean_raw"].as_f64().unwrap();
        assert!(
            (ret - want).abs() < 1e-9 * want.abs().max(1.0),
            "{ret} vs {want}"
        );
    }
    assert!(land.join("gradient_return.svg").is_file() && land.join("landscape.md").is_file());
    // --metric belongs to the language-model probe: a BC checkpoint refuses it by name.
    let err = run_err(lmtrain().args([
        "landscape",
        "--checkpoint",
        &full.display().to_string(),
        "--metric",
        "rep4",
    ]));
    assert!(
        err.contains("--metric") && err.contains("behaviour-cloning"),
        "{err}"
    );
    // Sampling and export refuse a policy with a message that points at rollout.
    for args in [
        vec!["sample", "--prompt", "x", "--checkpoint"],
        vec!["export", "--out", "/nonexistent", "--checkpoint"],
    ] {
        let err = run_err(lmtrain().args(&args).arg(&full));
        assert!(
            err.contains("behaviour-cloning") && err.contains("lmtrain rollout"),
            "{err}"
        );
    }
}

/// The transformer policy through the same loop: windows of 4 observations, 2 tiny blocks. Its
/// BC loss falls, its rollouts are logged, a resume is exact, and `lmtrain rollout` (the
/// lockstep rollouts on a fresh device) reproduces the run's last EMA evaluation.
#[test]
fn transformer_policy_trains_resumes_and_rolls_out() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    let tf: Vec<String> = [
        "policy.kind=\"transformer\"",
        "policy.n_layer=2",
        "policy.n_head=2",
        "policy.n_embd=16",
        "policy.history=4",
        "train.batch_size=32",
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s.to_string()])
    .collect();
    run_ok(
        lmtrain()
            .args(tiny_args(&data, tmp.path(), "full"))
            .args(&tf),
    );
    let full = tmp.path().join("full");
    let rows = metrics(&full);
    // 40 steps of a randomly initialised transformer: the loss falls by a third or more (0.22 →
    // 0.11 in a trial); a policy that ignores its inputs stays near the first value.
    assert!(
        train_loss(&rows, 40) < 0.7 * train_loss(&rows, 1),
        "the BC loss did not fall"
    );
    let log = std::fs::read_to_string(full.join("train.log")).unwrap();
    assert!(
        log.contains("policy: transformer over the last 4 observations"),
        "{log}"
    );
    let split = stop_and_resume(&data, tmp.path(), &tf);
    assert_eq!(strip_timing(metrics(&split)), strip_timing(rows.clone()));
    rollout_reproduces_last_ema(&full, &rows);
}

/// `--set` arguments for a 2×32 MLP policy.
fn small_mlp() -> Vec<String> {
    vec!["--set".into(), "policy.hidden=[32, 32]".into()]
}

/// The train loss logged at `step`.
fn train_loss(rows: &[serde_json::Value], step: u64) -> f64 {
    rows.iter()
        .find(|r| r["step"] == step && r.get("train_loss").is_some())
        .map(|r| r["train_loss"].as_f64().unwrap())
        .unwrap()
}

/// The tiny run (with `extra` arguments) stopped at step 20 in `out/split`, then resumed from
/// its directory alone to step 40; returns the run directory.
fn stop_and_resume(data: &Path, out: &Path, extra: &[String]) -> PathBuf {
    run_ok(
        lmtrain()
            .args(tiny_args(data, out, "split"))
            .args(extra)
            .args(["--set", "train.max_steps=20"]),
    );
    let split = out.join("split");
    run_ok(lmtrain().args([
        "train",
        "--resume",
        &split.display().to_string(),
        "--set",
        "train.max_steps=40",
    ]));
    split
}

/// Metrics rows without their wall-clock figures, which differ between runs (nothing else may).
fn strip_timing(rows: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    rows.into_iter()
        .map(|mut r| {
            let o = r.as_object_mut().unwrap();
            o.retain(|k, _| !k.contains("per_s") && k != "rollout_seconds");
            r
        })
        .collect()
}

/// `lmtrain rollout --ema` on the run's checkpoint alone reproduces its last EMA evaluation.
fn rollout_reproduces_last_ema(run: &Path, rows: &[serde_json::Value]) {
    let out = run_ok(lmtrain().args([
        "rollout",
        "--checkpoint",
        &run.display().to_string(),
        "--ema",
        "--episodes",
        "2",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let last = rows
        .iter()
        .rev()
        .find(|r| r.get("rollout_return_mean_ema").is_some())
        .unwrap();
    for k in ["rollout_return_mean_ema", "rollout_action_err_ema"] {
        assert_eq!(summary[k], last[k], "{k}");
    }
}

/// The last logged val_loss_raw.
fn rows_val_loss(rows: &[serde_json::Value]) -> f64 {
    rows.iter()
        .rev()
        .find_map(|r| r.get("val_loss_raw").and_then(|v| v.as_f64()))
        .unwrap()
}

#[test]
fn bc_config_errors_name_the_key_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path());
    // A language-model table in a BC config.
    let err = run_err(
        lmtrain()
            .args(tiny_args(&data, tmp.path(), "e1"))
            .args(["--set", "model.n_layer=2"]),
    );
    assert!(err.contains("model"), "{err}");
    // An unknown task.
    let err = run_err(
        lmtrain()
            .args(tiny_args(&data, tmp.path(), "e2"))
            .args(["--set", "task.kind=rl"]),
    );
    assert!(err.contains("task.kind") && err.contains("\"bc\""), "{err}");
    // Rollout starts the dataset was collected from.
    let err = run_err(
        lmtrain()
            .args(tiny_args(&data, tmp.path(), "e3"))
            .args(["--set", "eval.rollout_seed=2"]),
    );
    assert!(
        err.contains("eval.rollout_seed") && err.contains("episode 2"),
        "{err}"
    );
    // More episodes than the data holds.
    let err = run_err(
        lmtrain()
            .args(tiny_args(&data, tmp.path(), "e4"))
            .args(["--set", "data.episodes=7"]),
    );
    assert!(
        err.contains("data.episodes = 7") && err.contains("3 episodes"),
        "{err}"
    );
    // A transformer key on the MLP, which would ignore it; heads that do not divide the width.
    let err = run_err(
        lmtrain()
            .args(tiny_args(&data, tmp.path(), "e5"))
            .args(["--set", "policy.history=4"]),
    );
    assert!(
        err.contains("policy.history") && err.contains("policy.kind = \"transformer\""),
        "{err}"
    );
    let err = run_err(lmtrain().args(tiny_args(&data, tmp.path(), "e6")).args([
        "--set",
        "policy.kind=\"transformer\"",
        "--set",
        "policy.n_head=3",
    ]));
    assert!(
        err.contains("policy.n_embd = 64") && err.contains("policy.n_head = 3"),
        "{err}"
    );
    // A window longer than an episode, and the MLP's keys on the transformer.
    for (set, want) in [
        ("policy.history=1001", "policy.history = 1001"),
        ("policy.hidden=[32]", "belong to the MLP policy"),
    ] {
        let err = run_err(lmtrain().args(tiny_args(&data, tmp.path(), "e7")).args([
            "--set",
            "policy.kind=\"transformer\"",
            "--set",
            set,
        ]));
        assert!(err.contains(want), "{set}: {err}");
    }
}

#[test]
fn every_bc_config_parses_and_is_commented() {
    let dir = repo().join("configs/bc");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        n += 1;
        crate::common::assert_keys_commented(&path);
        let out = run_ok(lmtrain().arg("--config").arg(&path).arg("--dump-config"));
        let dumped = String::from_utf8_lossy(&out.stdout);
        assert!(dumped.contains("kind = \"bc\""), "{dumped}");
    }
    assert!(n >= 2, "configs/bc holds {n} configs");
}
