//! The failing input cases of ../shared/cases/, each as the behaviour it should have had
//! (inputs copied into tests/fixtures/cases/; c12 is in config_table.rs).

use std::path::{Path, PathBuf};

use super::common::*;

fn case(rel: &str) -> PathBuf {
    repo().join("tests/fixtures/cases").join(rel)
}

/// The cases' tiny config, on `train` with validation from `val`, in a fresh directory.
fn run_case(
    out: &Path,
    name: &str,
    train: &Path,
    val: &Path,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = lmtrain();
    cmd.arg("--config").arg(case("base.toml")).args([
        "--set",
        &format!("train.out_dir={:?}", out.display().to_string()),
        "--set",
        &format!("train.run_name={name:?}"),
        "--set",
        &format!("data.train_glob={:?}", train.display().to_string()),
        "--set",
        &format!("data.val_glob={:?}", val.display().to_string()),
    ]);
    for e in extra {
        cmd.args(["--set", e]);
    }
    cmd
}

fn log(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(name).join("train.log")).unwrap()
}

/// c02: one-row row groups lost every token (each group's tail was dropped). With the carry,
/// the same documents in 1 or in 120 row groups give a whole epoch of windows either way, and
/// the log says how many tokens the epoch's final partial window dropped.
#[test]
fn c02_packing_carries_tails_across_row_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let val = case("c02/val.parquet");
    // 40 steps of 4 windows of 33 tokens = 5,280 tokens: more than one epoch of this data, so
    // the epoch's end (and its dropped tail) is logged.
    let steps = [
        "train.max_steps=40",
        "eval.val_every=40",
        "checkpoint.every=40",
    ];
    for name in ["train-one", "train-rg1"] {
        run_ok(&mut run_case(
            tmp.path(),
            name,
            &case(&format!("c02/{name}.parquet")),
            &val,
            &steps,
        ));
    }
    let one = log(tmp.path(), "train-one");
    let rg1 = log(tmp.path(), "train-rg1");
    let dropped = |log: &str| -> usize {
        let line = log
            .lines()
            .find(|l| l.contains("final partial window"))
            .unwrap_or_else(|| panic!("no epoch-end line in:\n{log}"));
        line.split("window of ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // The same token stream, packed the same way, whatever the row groups: the same tail.
    assert_eq!(dropped(&one), dropped(&rg1));
    assert!(dropped(&one) < 33);
    let tokens = |log: &str| -> usize {
        let line = log
            .lines()
            .find(|l| l.starts_with("train shard"))
            .unwrap_or_else(|| panic!("no shard line in:\n{log}"));
        line.split(", ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        tokens(&one),
        tokens(&rg1),
        "the shards hold the same documents"
    );
}

/// c02, the error for data that really is too small: it gives the token count and the window.
#[test]
fn c02_too_little_data_names_the_token_count_and_window() {
    let tmp = tempfile::tempdir().unwrap();
    let err = run_err(&mut run_case(
        tmp.path(),
        "small",
        &case("c02/train-one.parquet"),
        &case("c02/val.parquet"),
        &["model.block_size=100000", "eval.val_windows=1"],
    ));
    assert!(err.contains("tokens") && err.contains("100001"), "{err}");
}

/// c05: a train shard without text (all nulls, or all empty strings) is refused before any
/// training, naming the file, the column and the counts.
#[test]
fn c05_a_shard_without_text_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, what) in [
        ("train-allnull", "50 null"),
        ("train-allempty", "500 empty"),
    ] {
        let err = run_err(&mut run_case(
            tmp.path(),
            name,
            &case(&format!("c05/{name}.parquet")),
            &case("c05/val.parquet"),
            &[],
        ));
        assert!(
            err.contains(&format!("{name}.parquet"))
                && err.contains("holds no text")
                && err.contains(what),
            "{err}"
        );
        assert!(!tmp.path().join(name).join("checkpoints").exists());
    }
}

/// The same file as train and validation shard, and a tokenizer that loses text, are reported.
#[test]
fn train_validation_overlap_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = case("c02/train-one.parquet");
    run_ok(&mut run_case(
        tmp.path(),
        "overlap",
        &data,
        &data,
        &[
            "train.max_steps=2",
            "eval.val_every=2",
            "checkpoint.every=2",
        ],
    ));
    let log = log(tmp.path(), "overlap");
    assert!(log.contains("both a train and a validation shard"), "{log}");
    let overlap: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("also appear in the validation shards"))
        .collect();
    assert_eq!(
        overlap.len(),
        1,
        "one summary line, not one per row group: {overlap:?}"
    );
    assert!(
        overlap[0].contains("of the 120 train documents"),
        "{}",
        overlap[0]
    );
}

fn c20(rel: &str) -> PathBuf {
    case(&format!("c20/{rel}"))
}

/// c20: a run's tokenizer is its own. Two runs share tokenizer.path; the second changes the data
/// fingerprint, so its tokenizer goes beside the shared one instead of over it, and the first run
/// still samples and exports (also without its own copy, through tokenizer.path). A resume after
/// a shard appeared is refused, naming it, unless accepted.
#[test]
fn c20_tokenizers_are_never_overwritten_and_shard_changes_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared-tok.json");
    let tok = format!("tokenizer.path={:?}", shared.display().to_string());
    for (name, frac) in [
        ("X", "data.val_fraction=0.05"),
        ("Y", "data.val_fraction=0.10"),
    ] {
        let mut cmd = lmtrain();
        cmd.arg("--config").arg(case("base.toml")).args([
            "--set",
            &format!("train.out_dir={:?}", tmp.path().display().to_string()),
            "--set",
            &format!("train.run_name={name:?}"),
            "--set",
            &format!(
                "data.train_glob={:?}",
                c20("train-0.parquet").display().to_string()
            ),
            "--set",
            frac,
            "--set",
            &tok,
        ]);
        run_ok(&mut cmd);
        if name == "X" {
            assert!(
                tmp.path().join("X/tokenizer.json").is_file(),
                "the run keeps a copy"
            );
        }
    }
    let siblings: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("shared-tok.") && n != "shared-tok.json" && !n.ends_with("meta.json")
        })
        .collect();
    assert_eq!(siblings.len(), 1, "{siblings:?}");
    let x = tmp.path().join("X");
    run_ok(
        lmtrain()
            .args([
                "sample",
                "--device",
                "cpu",
                "--prompt",
                "Tom",
                "--tokens",
                "3",
                "--checkpoint",
            ])
            .arg(&x),
    );
    run_ok(
        lmtrain()
            .args(["export", "--checkpoint"])
            .arg(&x)
            .arg("--out")
            .arg(tmp.path().join("X-hf")),
    );
    // A run from before runs kept a copy: found through tokenizer.path.
    std::fs::remove_file(x.join("tokenizer.json")).unwrap();
    run_ok(
        lmtrain()
            .args([
                "sample",
                "--device",
                "cpu",
                "--prompt",
                "Tom",
                "--tokens",
                "3",
                "--checkpoint",
            ])
            .arg(&x),
    );

    // (b) one more shard under the glob of a finished run.
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(c20("train-0.parquet"), data.join("train-0.parquet")).unwrap();
    let mut cmd = lmtrain();
    cmd.arg("--config").arg(case("base.toml")).args([
        "--set",
        &format!("train.out_dir={:?}", tmp.path().display().to_string()),
        "--set",
        "train.run_name=\"R\"",
        "--set",
        &format!(
            "data.train_glob={:?}",
            format!("{}/train-*.parquet", data.display())
        ),
        "--set",
        &format!(
            "data.val_glob={:?}",
            c20("val.parquet").display().to_string()
        ),
    ]);
    run_ok(&mut cmd);
    let r = tmp.path().join("R");
    let before = std::fs::read(r.join("tokenizer.json")).unwrap();
    std::fs::copy(c20("train-1.parquet"), data.join("train-1.parquet")).unwrap();
    let err = run_err(
        lmtrain()
            .args(["train", "--resume"])
            .arg(&r)
            .args(["--set", "train.max_steps=10"]),
    );
    assert!(
        err.contains("incompatible")
            && err.contains("train-1.parquet")
            && err.contains("--accept-data-change"),
        "{err}"
    );
    run_ok(lmtrain().args(["train", "--resume"]).arg(&r).args([
        "--set",
        "train.max_steps=10",
        "--accept-data-change",
    ]));
    assert_eq!(
        std::fs::read(r.join("tokenizer.json")).unwrap(),
        before,
        "the run's tokenizer changed"
    );
    run_ok(
        lmtrain()
            .args([
                "sample",
                "--device",
                "cpu",
                "--prompt",
                "Tom",
                "--tokens",
                "3",
                "--checkpoint",
            ])
            .arg(&r),
    );
}

/// The cases' tiny run on c02's data with a NaN loss injected at step 7 (LMTRAIN_FAULT), under
/// each `train.on_nonfinite`.
fn nan_run(out: &Path, name: &str, mode: &str) -> std::process::Command {
    let mut cmd = run_case(
        out,
        name,
        &case("c02/train-one.parquet"),
        &case("c02/val.parquet"),
        &[
            &format!("train.on_nonfinite={mode:?}"),
            "train.max_steps=12",
            "checkpoint.every=5",
            "checkpoint.keep_last=10",
            "eval.val_every=100",
            "train.log_every=1",
        ],
    );
    cmd.env("LMTRAIN_FAULT", "nan-loss-at:7");
    cmd
}

#[test]
fn a_nan_loss_stops_skips_or_rolls_back_as_configured() {
    let tmp = tempfile::tempdir().unwrap();
    // "stop" (the default): an error at the next read of the loss, naming the last good checkpoint.
    let err = run_err(&mut nan_run(tmp.path(), "stop", "stop"));
    assert!(
        err.contains("step 7") && err.contains("diverged") && err.contains("ckpt-000000005"),
        "{err}"
    );

    // "skip": step 7 is a masked update, so the checkpoints around it bracket it exactly:
    // weights, moments and EMA after step 7 equal those after step 6.
    let mut skip = nan_run(tmp.path(), "skip", "skip");
    run_ok(skip.args(["--set", "checkpoint.every=1"]));
    let dir = tmp.path().join("skip/checkpoints");
    let tensors = |step: u64| {
        let (_, s) = lmtrain::train::checkpoint::load(
            &dir.join(lmtrain::train::checkpoint::file_name(step)),
            None,
        )
        .unwrap();
        (s.params, s.ema, s.adam_m, s.adam_v)
    };
    assert_eq!(tensors(6), tensors(7), "the skipped step changed the state");
    assert_ne!(tensors(7), tensors(8));
    let log = std::fs::read_to_string(tmp.path().join("skip/train.log")).unwrap();
    assert!(
        log.contains("skipped 1 of the 1 steps up to step 7"),
        "{log}"
    );
    let rows = metrics(&tmp.path().join("skip"));
    assert_eq!(rows[6]["skipped_steps"], 1.0);
    assert!(rows
        .iter()
        .all(|r| r["train_loss"].as_f64().is_none_or(f64::is_finite)));

    // "rollback": back to step 5 with half the learning rate, then on to the end; one metrics row
    // per step; the checkpoint records the rollback.
    run_ok(&mut nan_run(tmp.path(), "rollback", "rollback"));
    let log = std::fs::read_to_string(tmp.path().join("rollback/train.log")).unwrap();
    assert!(
        log.contains("rollback 1/3 at step 7") && log.contains("back to step 5"),
        "{log}"
    );
    let rows = metrics(&tmp.path().join("rollback"));
    let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(
        steps,
        (1..=12).collect::<Vec<_>>(),
        "one row per step after the rewind"
    );
    let lr = |s: usize| rows[s - 1]["lr"].as_f64().unwrap();
    let straight = metrics(&tmp.path().join("skip"));
    assert!(
        (lr(8) - 0.5 * straight[7]["lr"].as_f64().unwrap()).abs() < 1e-12,
        "the rolled-back lr is not halved"
    );
    let meta = lmtrain::train::checkpoint::read_meta(
        &tmp.path()
            .join("rollback/checkpoints")
            .join(lmtrain::train::checkpoint::file_name(12)),
    )
    .unwrap();
    assert_eq!(meta.rollbacks, 1);
}

/// A tokenizer that changes text (here: a lowercasing normalizer put into a trained byte-level
/// BPE) gets a warning with the fraction of sampled documents it changes.
#[test]
fn a_tokenizer_that_does_not_round_trip_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, val) = (case("c02/train-one.parquet"), case("c02/val.parquet"));
    run_ok(&mut run_case(
        tmp.path(),
        "plain",
        &train,
        &val,
        &[
            "train.max_steps=1",
            "eval.val_every=1",
            "checkpoint.every=1",
        ],
    ));
    let plain = log(tmp.path(), "plain");
    assert!(!plain.contains("round-trip"), "{plain}");
    let mut tok: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("plain/tokenizer.json")).unwrap(),
    )
    .unwrap();
    tok["normalizer"] = serde_json::json!({"type": "Lowercase"});
    let lower = tmp.path().join("lowercase.json");
    std::fs::write(&lower, serde_json::to_string(&tok).unwrap()).unwrap();
    let tok_set = format!("tokenizer.path={:?}", lower.display().to_string());
    run_ok(&mut run_case(
        tmp.path(),
        "lower",
        &train,
        &val,
        &[
            "train.max_steps=1",
            "eval.val_every=1",
            "checkpoint.every=1",
            &tok_set,
        ],
    ));
    let log = log(tmp.path(), "lower");
    let line = log
        .lines()
        .find(|l| l.contains("does not round-trip"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("sampled training documents") && line.contains('%'),
        "{line}"
    );
}
