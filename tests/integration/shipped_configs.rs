//! Every shipped config, run on the CPU for 40 steps with a tiny model, lowers the training
//! loss by at least 0.5 in under 10 minutes. The data globs point at local samples: the
//! synthetic corpus (written here) for the quickstart, `../shared/data` for the real-data
//! configs (skipped with a message when it is absent).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::common::*;

const SMOKE: &[&str] = &[
    "model.n_layer=2",
    "model.n_embd=64",
    "model.n_head=2",
    "model.block_size=64",
    "tokenizer.vocab_size=2048",
    "train.batch_size=8",
    "optim.grad_accum=1",
    "schedule.warmup_steps=10",
    // Run plumbing, not the model: CPU, 40 steps, local data, a private tokenizer.
    "device=cpu",
    "train.max_steps=40",
    "train.log_every=5",
    "eval.val_every=40",
    "eval.val_windows=4",
    "checkpoint.every=40",
    "data.tokenizer_docs=3000",
    "eval.generate_every=0",
];

/// Local data for a shipped config: (train glob, validation glob), or None to skip.
fn local_data(name: &str, tmp: &Path) -> Option<(String, Option<String>)> {
    match name {
        "quickstart" => {
            let d = synth_corpus(tmp, 3000);
            Some((
                format!("{}/train-*.parquet", d.display()),
                Some(format!("{}/validation-*.parquet", d.display())),
            ))
        }
        "tinystories" => shared_data().map(|d| {
            let d = d.join("TinyStories/data");
            (
                format!("{}/train-*.parquet", d.display()),
                Some(format!("{}/validation-*.parquet", d.display())),
            )
        }),
        "wikipedia" => shared_data().map(|d| {
            (
                format!("{}/wikipedia/20231101.en/train-*.parquet", d.display()),
                None,
            )
        }),
        other => panic!("shipped config {other}.toml has no smoke-test data; add it here"),
    }
}

fn smoke(config: &Path) {
    let name = config.file_stem().unwrap().to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let Some((train, val)) = local_data(&name, tmp.path()) else {
        eprintln!(
            "SKIP {name}.toml: ../shared/data is absent, so there is no local sample of its data"
        );
        return;
    };
    let mut cmd = lmtrain();
    cmd.arg("--config").arg(config);
    for s in SMOKE {
        cmd.args(["--set", s]);
    }
    cmd.args(["--set", &format!("data.train_glob={train}")]);
    if let Some(v) = val {
        cmd.args(["--set", &format!("data.val_glob={v}")]);
    } else {
        // Wikipedia's 60 sample articles: hold out enough of them for 4 windows.
        cmd.args(["--set", "data.val_fraction=0.1"]);
    }
    let out_dir = tmp.path().join("runs");
    cmd.args(["--set", &format!("train.out_dir={}", out_dir.display())]);
    cmd.args([
        "--set",
        &format!("tokenizer.path={}", tmp.path().join("tok.json").display()),
    ]);
    let start = Instant::now();
    run_ok(&mut cmd);
    let secs = start.elapsed().as_secs_f64();
    let rows = metrics(&only_run(&out_dir));
    let first = rows.first().unwrap()["train_loss"].as_f64().unwrap();
    let last = rows.last().unwrap()["train_loss"].as_f64().unwrap();
    println!(
        "{name}.toml: train loss {first:.3} at step 1 → {last:.3} over steps 36–40 (−{:.3}) in {secs:.0} s",
        first - last
    );
    assert!(
        first - last >= 0.5,
        "{name}.toml lowered the loss by only {:.3}",
        first - last
    );
    assert!(secs < 600.0, "{name}.toml took {secs:.0} s (limit 600 s)");
}

fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_config_is_covered_and_fully_commented() {
    let configs = shipped();
    assert!(configs.len() >= 3, "{configs:?}");
    for c in &configs {
        let name = c.file_stem().unwrap().to_string_lossy();
        assert!(
            ["quickstart", "tinystories", "wikipedia"].contains(&name.as_ref()),
            "{name}.toml has no smoke test below; add one"
        );
        crate::common::assert_keys_commented(c);
        // And it parses against the schema.
        run_ok(lmtrain().arg("--config").arg(c).arg("--dump-config"));
    }
}

#[test]
fn quickstart_config_learns_in_40_steps() {
    smoke(&repo().join("configs/quickstart.toml"));
}

#[test]
fn tinystories_config_learns_in_40_steps() {
    smoke(&repo().join("configs/tinystories.toml"));
}

#[test]
fn wikipedia_config_learns_in_40_steps() {
    smoke(&repo().join("configs/wikipedia.toml"));
}
