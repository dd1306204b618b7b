//! Checkpoints and exact resume: a run stopped at step k and resumed produces the same losses,
//! to the last bit, as an uninterrupted run — mid-epoch, with dropout, grad_accum = 2 and the EMA
//! past its burn-in; and the same for a bias-corrected EMA (`ema.kind = "bema"`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::common::*;
use lmtrain::train::checkpoint;

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let data = synth_corpus(&dir, 2500);
    let config = tiny_config(&dir, &data, "");
    Setup {
        _tmp: tmp,
        dir,
        config,
    }
}

fn train(s: &Setup, args: &[&str]) -> std::process::Output {
    let tok = format!("tokenizer.path={}", s.dir.join("tok.json").display());
    let mut cmd = lmtrain();
    cmd.arg("--config").arg(&s.config).args(["--set", &tok]);
    for a in args {
        cmd.args(["--set", a]);
    }
    run_ok(&mut cmd)
}

fn losses_from(rows: &[serde_json::Value], first_step: u64) -> Vec<(u64, String)> {
    rows.iter()
        .filter(|r| r["step"].as_u64().unwrap() >= first_step)
        .map(|r| {
            let mut r = r.as_object().unwrap().clone();
            // Wall-clock throughput differs between runs; everything else must not.
            r.remove("tok_per_s");
            (
                r["step"].as_u64().unwrap(),
                serde_json::to_string(&r).unwrap(),
            )
        })
        .collect()
}

fn params_of(run: &Path) -> (Vec<Vec<f32>>, Option<Vec<Vec<f32>>>) {
    let ckpt = checkpoint::resolve(run).unwrap();
    let (_, s) = checkpoint::load(&ckpt, None).unwrap();
    (s.params, s.ema)
}

#[test]
fn resumed_run_is_bit_identical_to_uninterrupted() {
    let s = setup();
    train(&s, &["train.run_name=full"]);
    train(&s, &["train.run_name=part", "train.max_steps=5"]);
    let part = s.dir.join("runs/part");
    assert!(checkpoint::resolve(&part)
        .unwrap()
        .ends_with(checkpoint::file_name(5)));
    let tok = format!("tokenizer.path={}", s.dir.join("tok.json").display());
    run_ok(
        lmtrain()
            .args(["train", "--resume"])
            .arg(&part)
            .arg("--config")
            .arg(&s.config)
            .args(["--set", "train.run_name=part", "--set", &tok]),
    );

    let full_rows = metrics(&s.dir.join("runs/full"));
    let part_rows = metrics(&part);
    // Rows of the first 5 steps, then the resumed ones: the same steps as the full run.
    let steps: Vec<u64> = part_rows
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        steps,
        (1..=12).collect::<Vec<_>>(),
        "metrics.jsonl is appended"
    );
    let a = losses_from(&full_rows, 1);
    let mut part_rows = part_rows;
    // The stopped run validated at its last step (5); the uninterrupted one did not.
    for key in ["val_loss_raw", "val_loss_ema"] {
        part_rows[4].as_object_mut().unwrap().remove(key);
    }
    let b = losses_from(&part_rows, 1);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x, y,
            "step {}: losses, grad norms and val losses must match to the bit",
            x.0
        );
    }
    let last = full_rows.last().unwrap();
    assert!(last["val_loss_raw"].is_number() && last["val_loss_ema"].is_number());
    assert_ne!(
        last["val_loss_raw"], last["val_loss_ema"],
        "EMA is past burn-in"
    );

    let (pa, ea) = params_of(&s.dir.join("runs/full"));
    let (pb, eb) = params_of(&part);
    assert!(pa == pb, "final raw weights differ after resume");
    assert!(ea == eb, "final EMA weights differ after resume");
    // keep_last = 2: only the newest two checkpoints remain.
    assert_eq!(
        checkpoint::list(&part.join("checkpoints")).unwrap().len(),
        2
    );
}

#[test]
fn resume_refuses_an_incompatible_config_and_a_corrupt_checkpoint() {
    let s = setup();
    train(&s, &["train.run_name=r", "train.max_steps=2"]);
    let run = s.dir.join("runs/r");
    let err = run_err(
        lmtrain()
            .arg("--resume")
            .arg(&run)
            .arg("--config")
            .arg(&s.config)
            .args(["--set", "train.run_name=r", "--set", "model.n_embd=64"]),
    );
    assert!(err.contains("incompatible"), "{err}");
    assert!(err.contains("model.n_embd"), "{err}");

    let ckpt = checkpoint::resolve(&run).unwrap();
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 3]).unwrap();
    let err = run_err(lmtrain().arg("--resume").arg(&run));
    assert!(
        err.contains(&ckpt.file_name().unwrap().to_string_lossy().to_string()),
        "the error names the checkpoint: {err}"
    );
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn sigint_finishes_the_step_checkpoints_and_exits_zero() {
    let s = setup();
    let tok = format!("tokenizer.path={}", s.dir.join("tok.json").display());
    let child = lmtrain()
        .arg("--config")
        .arg(&s.config)
        .args([
            "--set",
            &tok,
            "--set",
            "train.run_name=sig",
            "--set",
            "train.max_steps=100000",
            "--set",
            "checkpoint.every=100000",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = s.dir.join("runs/sig");
    let start = Instant::now();
    while !run.join("metrics.jsonl").exists() || metrics(&run).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit status {:?}: {stderr}",
        out.status
    );
    assert!(stderr.contains("interrupted at step"), "{stderr}");
    let ckpt = checkpoint::resolve(&run).unwrap();
    let step = checkpoint::read_meta(&ckpt).unwrap().step;
    assert!(
        stderr.contains(&ckpt.display().to_string()),
        "says where: {stderr}"
    );
    assert!(step >= 3);

    // It resumes from there.
    let target = format!("train.max_steps={}", step + 2);
    run_ok(lmtrain().arg("--resume").arg(&run).args(["--set", &target]));
    let rows = metrics(&run);
    assert_eq!(rows.last().unwrap()["step"].as_u64().unwrap(), step + 2);
}

/// A run that died after its last checkpoint (simulated by deleting the newest checkpoint)
/// resumes from the one before: the rows logged after it are dropped and logged again, once,
/// with the same values.
#[test]
fn a_crashed_run_resumes_without_duplicate_rows() {
    let s = setup();
    train(&s, &["train.run_name=crash"]);
    let run = s.dir.join("runs/crash");
    let before = metrics(&run);
    let newest = checkpoint::resolve(&run).unwrap();
    assert!(newest.ends_with(checkpoint::file_name(12)));
    std::fs::remove_file(&newest).unwrap();
    let tok = format!("tokenizer.path={}", s.dir.join("tok.json").display());
    let out = run_ok(
        lmtrain()
            .args(["train", "--resume"])
            .arg(&run)
            .args(["--set", &tok]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dropped 4 line(s) after step 8 from metrics.jsonl"),
        "{stderr}"
    );
    let after = metrics(&run);
    let steps: Vec<u64> = after.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>(), "one row per step");
    assert_eq!(losses_from(&before, 1), losses_from(&after, 1));
}

/// `ema.kind = "bema"` (issue 17): a BEMA run stopped past its burn-in and resumed repeats the
/// uninterrupted one to the bit, so θ₀ and the plain EMA travel in the checkpoint. Its raw
/// series and weights equal a plain-EMA run's with the same seed, its plain EMA is that run's
/// EMA (γ = 1), and what it evaluates, logs and saves as `ema` is BEMA_t = α_t(θ_t − θ₀) + EMA_t.
#[test]
fn bema_run_resumes_exactly_and_shares_raw_weights_with_plain_ema() {
    let s = setup();
    let bema = ["ema.kind=bema", "ema.bias_power=0.3"];
    let run_bema = |extra: &[&str]| {
        let mut v: Vec<&str> = bema.to_vec();
        v.extend_from_slice(extra);
        train(&s, &v);
    };
    train(&s, &["train.run_name=plain"]);
    run_bema(&["train.run_name=full"]);
    run_bema(&["train.run_name=part", "train.max_steps=5"]);
    let part = s.dir.join("runs/part");
    // Resumed from the run directory alone (its config.toml carries the BEMA keys), to 12.
    let tok = format!("tokenizer.path={}", s.dir.join("tok.json").display());
    run_ok(lmtrain().args(["train", "--resume"]).arg(&part).args([
        "--set",
        &tok,
        "--set",
        "train.max_steps=12",
    ]));

    let plain_rows = metrics(&s.dir.join("runs/plain"));
    let full_rows = metrics(&s.dir.join("runs/full"));
    let mut part_rows = metrics(&part);
    for key in ["val_loss_raw", "val_loss_ema"] {
        part_rows[4].as_object_mut().unwrap().remove(key);
    }
    assert_eq!(
        losses_from(&full_rows, 1),
        losses_from(&part_rows, 1),
        "a resumed BEMA run repeats the uninterrupted one"
    );
    // Raw series as the plain-EMA run's; EMA series (BEMA) differ once past the burn-in (3).
    for (p, b) in plain_rows.iter().zip(&full_rows) {
        assert_eq!(p["train_loss"], b["train_loss"], "step {}", p["step"]);
        assert_eq!(p["val_loss_raw"], b["val_loss_raw"], "step {}", p["step"]);
    }
    let last = full_rows.last().unwrap();
    assert!(last["val_loss_ema"].is_number());
    assert_ne!(
        last["val_loss_ema"],
        plain_rows.last().unwrap()["val_loss_ema"]
    );

    let (plain_params, plain_ema) = params_of(&s.dir.join("runs/plain"));
    let ckpt = checkpoint::resolve(&s.dir.join("runs/full")).unwrap();
    let (meta, state, saved) = checkpoint::load_with_bema(&ckpt, None).unwrap();
    assert_eq!((meta.step, meta.version), (12, checkpoint::VERSION));
    let saved = saved.expect("a BEMA checkpoint holds θ₀ and the plain EMA");
    assert!(
        state.params == plain_params,
        "raw weights as the plain run's"
    );
    assert!(
        Some(&saved.ema) == plain_ema.as_ref(),
        "the plain EMA is the plain run's EMA"
    );
    // `ema.*` (what sample/export/rollout --ema read) = α_12(θ_12 − θ₀) + EMA_12, with
    // α_12 = (ρ + γ(12 − t₀))^(−η) = (2 + 9)^(−0.3).
    let alpha = 11f64.powf(-0.3) as f32;
    let bema_w = state.ema.as_ref().unwrap();
    let mut moved = 0.0f32;
    for ((b, p), (t0, e)) in bema_w
        .iter()
        .zip(&state.params)
        .zip(saved.theta0.iter().zip(&saved.ema))
    {
        for i in 0..b.len() {
            let want = (p[i] - t0[i]) * alpha + e[i];
            assert!(
                (b[i] - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{} vs {want}",
                b[i]
            );
            moved = moved.max((b[i] - e[i]).abs());
        }
    }
    assert!(moved > 0.0, "BEMA differs from the EMA");
    let (_, consumer) = checkpoint::load(&ckpt, None).unwrap();
    assert!(consumer.ema.as_ref() == Some(bema_w), "--ema reads BEMA");
    // The resumed run's final checkpoint holds the same tensors.
    let (_, part_state, part_saved) =
        checkpoint::load_with_bema(&checkpoint::resolve(&part).unwrap(), None).unwrap();
    assert!(part_state.params == state.params && part_state.ema == state.ema);
    let part_saved = part_saved.unwrap();
    assert!(part_saved.theta0 == saved.theta0 && part_saved.ema == saved.ema);
}

/// A version-3 checkpoint (before BEMA's θ₀) still loads, with a warning naming what it lacks.
#[test]
fn a_version_3_checkpoint_loads_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = vec![lmtrain::model::ParamSpec::new("w", &[2])];
    let state = checkpoint::CheckpointState {
        params: vec![vec![1.0, 2.0]],
        ema: Some(vec![vec![1.5, 2.5]]),
        adam_m: vec![vec![0.0; 2]],
        adam_v: vec![vec![0.0; 2]],
        buffers: Vec::new(),
    };
    let meta = checkpoint::CheckpointMeta {
        format: checkpoint::FORMAT.into(),
        version: 3,
        step: 3,
        tokens: 10,
        cursor: serde_json::Value::Null,
        config: String::new(),
        tokenizer_hash: String::new(),
        val_loss_raw: None,
        val_loss_ema: None,
        has_ema: true,
        train_shards: Vec::new(),
        checksum: None,
        rollbacks: 0,
        task_info: serde_json::Value::Null,
    };
    let path = checkpoint::save(tmp.path(), &specs, &state, &meta).unwrap();
    let (_, loaded, bema) = checkpoint::load_with_bema(&path, None).unwrap();
    assert_eq!(loaded.ema, state.ema);
    assert!(bema.is_none());
    let out = run_ok(lmtrain().arg("inspect").arg(&path));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 3") && err.contains("warning") && err.contains("BEMA θ₀"),
        "{err}"
    );
}
