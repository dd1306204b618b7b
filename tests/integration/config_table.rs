//! Malformed configs, one table: each is refused before any training with an error that names
//! the key (or file) and says what is allowed. And the numeric flags of the commands (case c12
//! of ../shared/cases: a NaN or negative sampling temperature was accepted).

use super::common::*;

/// (what, --set overrides on configs/quickstart.toml, text the error must contain).
const MALFORMED: &[(&str, &[&str], &[&str])] = &[
    (
        "unknown key",
        &["optim.learning_rate=1e-3"],
        &["learning_rate", "expected one of"],
    ),
    ("unknown table", &["optimizer.lr=1e-3"], &["optimizer"]),
    (
        "wrong type",
        &["train.batch_size=\"eight\""],
        &["batch_size"],
    ),
    ("negative lr", &["optim.lr=-1e-3"], &["optim.lr", "allowed"]),
    (
        "NaN lr",
        &["optim.lr=nan"],
        &["optim.lr", "not a finite number"],
    ),
    (
        "infinite lr",
        &["optim.lr=inf"],
        &["optim.lr", "not a finite number"],
    ),
    ("zero lr", &["optim.lr=0.0"], &["optim.lr", "> 0"]),
    (
        "n_embd not divisible by n_head",
        &["model.n_embd=100", "model.n_head=3"],
        &["n_embd", "divisible"],
    ),
    (
        "zero layers",
        &["model.n_layer=0"],
        &["model.n_layer", "≥ 1"],
    ),
    (
        "dropout 1",
        &["model.dropout=1.0"],
        &["model.dropout", "[0, 1)"],
    ),
    (
        "beta2 of 1",
        &["optim.beta2=1.0"],
        &["optim.beta2", "[0, 1)"],
    ),
    (
        "negative weight decay",
        &["optim.weight_decay=-0.1"],
        &["optim.weight_decay"],
    ),
    (
        "NaN grad_clip",
        &["optim.grad_clip=nan"],
        &["optim.grad_clip", "not a finite number"],
    ),
    (
        "zero accumulation",
        &["optim.grad_accum=0"],
        &["optim.grad_accum"],
    ),
    (
        "min_lr above lr",
        &["schedule.min_lr=1.0"],
        &["schedule.min_lr", "optim.lr"],
    ),
    (
        "unknown schedule",
        &["schedule.kind=\"exponential\""],
        &["exponential", "cosine"],
    ),
    (
        "EMA offset below 1",
        &["ema.offset=0.5"],
        &["ema.offset", "β ≤ 1"],
    ),
    (
        "NaN EMA power",
        &["ema.power=nan"],
        &["ema.power", "not a finite number"],
    ),
    (
        "negative batch size",
        &["train.batch_size=-8"],
        &["batch_size"],
    ),
    (
        "NaN eval temperature",
        &["eval.temperature=nan"],
        &["eval.temperature", "not a finite number"],
    ),
    (
        "negative eval temperature",
        &["eval.temperature=-1.0"],
        &["eval.temperature", "≥ 0"],
    ),
    (
        "prompt longer than context",
        &["eval.generate_every=10", "eval.prompt_tokens=128"],
        &["eval.prompt_tokens", "block_size"],
    ),
    (
        "validation fraction 1",
        &["data.val_fraction=1.0"],
        &["data.val_fraction"],
    ),
    (
        "zero checkpoint interval",
        &["checkpoint.every=0"],
        &["checkpoint.every"],
    ),
    ("unknown device", &["device=\"tpu\""], &["tpu", "cuda"]),
];

#[test]
fn malformed_configs_are_refused_with_an_actionable_error() {
    let config = repo().join("configs/quickstart.toml");
    assert!(MALFORMED.len() >= 20);
    for (what, sets, needles) in MALFORMED {
        let mut cmd = lmtrain();
        cmd.arg("--config").arg(&config);
        for s in *sets {
            cmd.args(["--set", s]);
        }
        cmd.arg("--dump-config");
        let err = run_err(&mut cmd);
        for n in *needles {
            assert!(
                err.contains(n),
                "{what}: the error does not say {n:?}:\n{err}"
            );
        }
        assert!(
            err.contains("quickstart.toml"),
            "{what}: the error does not name the file:\n{err}"
        );
    }
}

/// An empty glob and a data set too small for one window: refused at start with the file or
/// glob named (these need the data, so they go beyond --dump-config).
#[test]
fn an_empty_glob_is_refused_naming_the_glob() {
    let tmp = tempfile::tempdir().unwrap();
    let glob = format!("{}/nothing-*.parquet", tmp.path().display());
    let err = run_err(
        lmtrain()
            .arg("--config")
            .arg(repo().join("configs/quickstart.toml"))
            .args([
                "--set",
                &format!("data.train_glob={glob:?}"),
                "--set",
                "device=cpu",
            ])
            .args([
                "--set",
                &format!("train.out_dir={:?}", tmp.path().display().to_string()),
            ]),
    );
    assert!(err.contains("nothing-*.parquet"), "{err}");
}

/// Case c12: non-finite or out-of-range numbers on the command line name the flag and the range.
#[test]
fn numeric_flags_are_checked_against_the_range_table() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "sample",
                "--checkpoint",
                "x",
                "--prompt",
                "a",
                "--temperature=nan",
            ],
            "sample --temperature = NaN is not a finite number",
        ),
        (
            &[
                "sample",
                "--checkpoint",
                "x",
                "--prompt",
                "a",
                "--temperature=-1",
            ],
            "sample --temperature = -1 is out of range",
        ),
        (
            &["sample", "--checkpoint", "x", "--prompt", "a", "--tokens=0"],
            "sample --tokens = 0 is out of range",
        ),
        (
            &["bench", "--lr=inf"],
            "bench --lr = inf is not a finite number",
        ),
        (&["bench", "--peak-tflops=-5"], "bench --peak-tflops"),
        (
            &["check-ops", "--max-rel-f32=nan"],
            "check-ops --max-rel-f32",
        ),
        (
            &["warmup", "--config", "x", "--steps=0"],
            "warmup --steps = 0",
        ),
        (
            &["report", "runs/x", "--trend-window=0"],
            "report --trend-window",
        ),
        (
            &["expert", "eval", "--expert", "x", "--episodes=0"],
            "expert eval --episodes",
        ),
        (&["expert", "bench", "--steps=0"], "expert bench --steps"),
    ];
    for (args, needle) in cases {
        let err = run_err(lmtrain().args(*args));
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            err.contains("allowed") || err.contains("odd"),
            "{args:?} does not give the range: {err}"
        );
    }
}
