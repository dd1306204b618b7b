//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The lmtrain binary built for these tests.
pub fn lmtrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lmtrain"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data` beside the repository, when present.
pub fn shared_data() -> Option<PathBuf> {
    let p = repo().join("../shared/data");
    p.is_dir().then_some(p)
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("cannot start lmtrain");
    assert!(
        out.status.success(),
        "lmtrain failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("cannot start lmtrain");
    assert!(
        !out.status.success(),
        "lmtrain should have failed:\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A synthetic corpus in `dir` (train + validation shards).
pub fn synth_corpus(dir: &Path, stories: usize) -> PathBuf {
    let out = dir.join("synth");
    lmtrain::data::synth::write_corpus(&out, stories, 1).expect("write synthetic corpus");
    out
}

/// Asserts that every key line of a shipped config has a one-line comment (` # …`).
pub fn assert_keys_commented(path: &Path) {
    let text = std::fs::read_to_string(path).expect("config");
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
            continue;
        }
        assert!(
            t.contains(" # "),
            "{}:{}: every key needs a one-line comment: {t}",
            path.display(),
            i + 1
        );
    }
}

/// Rows of a run's metrics.jsonl.
pub fn metrics(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics row is JSON"))
        .collect()
}

/// The only run directory under `out_dir`.
pub fn only_run(out_dir: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out_dir)
        .expect("out_dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one run dir in {}: {dirs:?}",
        out_dir.display()
    );
    dirs.pop().unwrap()
}

/// A tiny config over the corpus in `data`, written to `dir/tiny.toml`.
pub fn tiny_config(dir: &Path, data: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"
device = "cpu"
[model]
n_layer = 2
n_head = 2
n_embd = 32
block_size = 32
dropout = 0.1
vocab_size = 320
[tokenizer]
vocab_size = 300
[data]
train_glob = "{data}/train-*.parquet"
val_glob = "{data}/validation-*.parquet"
tokenizer_docs = 2000
[optim]
lr = 3e-3
beta1 = 0.9
beta2 = 0.95
eps = 1e-8
weight_decay = 0.1
grad_clip = 1.0
grad_accum = 2
[schedule]
kind = "cosine"
warmup_steps = 3
decay_steps = 20
min_lr = 3e-4
[ema]
enabled = true
kind = "poly"
power = 0.5
offset = 2.0
burn_in = 3
min_beta = 0.0
decay = 0.999
every = 1
[train]
max_steps = 12
batch_size = 4
seed = 7
out_dir = "{out}"
log_every = 1
[eval]
val_every = 4
val_windows = 8
[checkpoint]
every = 4
keep_last = 2
{extra}
"#,
        data = data.display(),
        out = dir.join("runs").display(),
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}
