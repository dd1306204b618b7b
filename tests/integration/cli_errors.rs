//! Bad input gets a clear error that names the file, the key and the fix — and the CLI's
//! config plumbing (`--set`, `--dump-config`) does what `--help` says.

use super::common::*;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn misspelled_key_in_file_names_file_key_and_allowed_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo().join("configs/quickstart.toml")).unwrap();
    let bad = base.replacen("n_layer", "n_layers", 1);
    let path = write(tmp.path(), "bad.toml", &bad);
    let err = run_err(lmtrain().arg("--config").arg(&path).arg("--dump-config"));
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("n_layers"), "{err}");
    assert!(err.contains("n_layer"), "lists the allowed keys: {err}");
}

#[test]
fn bad_set_key_and_bad_value_are_errors() {
    let cfg = repo().join("configs/quickstart.toml");
    let err = run_err(lmtrain().arg("--config").arg(&cfg).args([
        "--set",
        "optim.learning_rate=1e-3",
        "--dump-config",
    ]));
    assert!(err.contains("--set optim.learning_rate=1e-3"), "{err}");
    assert!(err.contains("learning_rate") && err.contains("lr"), "{err}");

    let err = run_err(lmtrain().arg("--config").arg(&cfg).args([
        "--set",
        "schedule.kind=exponential",
        "--dump-config",
    ]));
    assert!(
        err.contains("exponential") && err.contains("cosine"),
        "{err}"
    );

    let err =
        run_err(
            lmtrain()
                .arg("--config")
                .arg(&cfg)
                .args(["--set", "device=gpu", "--dump-config"]),
        );
    assert!(err.contains("\"cuda:N\""), "{err}");
}

#[test]
fn set_overrides_and_dump_config_prints_the_resolved_config() {
    let cfg = repo().join("configs/quickstart.toml");
    let out = run_ok(lmtrain().arg("--config").arg(&cfg).args([
        "--set",
        "optim.lr=0.00123",
        "--set",
        "train.run_name=hello world",
        "--dump-config",
    ]));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: toml::Table = text.parse().expect("--dump-config prints TOML");
    assert_eq!(v["optim"]["lr"].as_float(), Some(0.00123));
    assert_eq!(v["train"]["run_name"].as_str(), Some("hello world"));
    let glob = v["data"]["train_glob"].as_str().unwrap();
    assert!(std::path::Path::new(glob).is_absolute(), "{glob}");
}

#[test]
fn missing_shards_and_missing_column_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 50);
    let cfg = tiny_config(tmp.path(), &data, "");
    let err = run_err(
        lmtrain()
            .arg("--config")
            .arg(&cfg)
            .args(["--set", "data.train_glob=/nonexistent/train-*.parquet"]),
    );
    assert!(err.contains("/nonexistent/train-*.parquet"), "{err}");

    let err = run_err(
        lmtrain()
            .arg("--config")
            .arg(&cfg)
            .args(["--set", "data.text_column=body"]),
    );
    assert!(err.contains("body"), "{err}");
    assert!(err.contains("train-00000-of-00001.parquet"), "{err}");

    let junk = data.join("train-00001-of-00001.parquet");
    std::fs::write(&junk, b"definitely not parquet").unwrap();
    let err = run_err(lmtrain().arg("--config").arg(&cfg));
    assert!(err.contains("train-00001-of-00001.parquet"), "{err}");
}

#[test]
fn tokenizer_larger_than_model_vocab_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 200);
    let cfg = tiny_config(tmp.path(), &data, "");
    let err = run_err(
        lmtrain()
            .arg("--config")
            .arg(&cfg)
            .args(["--set", "tokenizer.vocab_size=400"]),
    );
    assert!(err.contains("model.vocab_size"), "{err}");
}

/// A divergence between two log steps is caught when the next checkpoint is due: the run stops
/// with an error naming the last good checkpoint, and no checkpoint with non-finite weights is
/// ever written.
#[test]
fn divergence_between_log_steps_never_reaches_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 300);
    let cfg = tiny_config(tmp.path(), &data, "");
    // A learning rate of 1e30 throws the weights to ~1e30 on step 1 (still finite); step 2's
    // forward pass overflows, and its update makes them NaN. The loss is logged only at step 1.
    let err = run_err(lmtrain().arg("--config").arg(&cfg).args([
        "--set",
        "optim.lr=1e30",
        "--set",
        "optim.grad_clip=0",
        "--set",
        "schedule.warmup_steps=0",
        "--set",
        "train.log_every=100",
        "--set",
        "checkpoint.every=1",
        "--set",
        "checkpoint.keep_last=10",
    ]));
    assert!(
        err.contains("diverged") && err.contains("non-finite"),
        "{err}"
    );
    assert!(err.contains("The last good checkpoint is"), "{err}");
    let ckpts = only_run(&tmp.path().join("runs")).join("checkpoints");
    let saved: Vec<_> = std::fs::read_dir(&ckpts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    assert!(!saved.is_empty(), "step 1 was finite and saved");
    for path in saved {
        let (_, state) = lmtrain::train::checkpoint::load(&path, None).unwrap();
        for values in state.params.iter().chain(state.ema.iter().flatten()) {
            assert!(values.iter().all(|x| x.is_finite()), "{}", path.display());
        }
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
