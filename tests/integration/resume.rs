//! Checkpoints and exact resume: a run stopped at step k and resumed produces the same losses,
//! to the last bit, as an uninterrupted run — mid-epoch, with dropout, grad_accum = 2 and the EMA
//! past its burn-in.

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
