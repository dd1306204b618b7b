//! `lmtrain sample`: stdout carries only the continuation, greedy decoding is deterministic,
//! `--ema` selects the EMA weights, and a run directory means its latest checkpoint.

use super::common::*;

#[test]
fn sample_prints_only_the_continuation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 300);
    let cfg = tiny_config(tmp.path(), &data, "");
    run_ok(lmtrain().arg("--config").arg(&cfg).args([
        "--set",
        "train.run_name=s",
        "--set",
        "train.max_steps=6",
    ]));
    let run = tmp.path().join("runs/s");
    let sample = |extra: &[&str]| {
        let out = run_ok(
            lmtrain()
                .arg("sample")
                .arg("--checkpoint")
                .arg(&run)
                .args([
                    "--prompt",
                    "Once upon a time",
                    "--tokens",
                    "20",
                    "--device",
                    "cpu",
                ])
                .args(extra),
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (greedy, log) = sample(&["--temperature", "0"]);
    assert!(log.contains("step 6"), "logs go to stderr: {log}");
    assert!(
        !greedy.contains("step 6") && !greedy.contains("device"),
        "{greedy}"
    );
    assert!(!greedy.contains("<|endoftext|>"), "{greedy}");
    assert!(
        !greedy.starts_with("Once upon a time"),
        "the prompt is not echoed"
    );
    assert_eq!(
        greedy,
        sample(&["--temperature", "0"]).0,
        "greedy is deterministic"
    );
    let (a, _) = sample(&["--seed", "1", "--temperature", "1.5", "--top-k", "0"]);
    assert_eq!(
        a,
        sample(&["--seed", "1", "--temperature", "1.5", "--top-k", "0"]).0
    );
    let (_, ema_log) = sample(&["--ema", "--temperature", "0"]);
    assert!(ema_log.contains("EMA"), "{ema_log}");

    let err = run_err(
        lmtrain()
            .args(["sample", "--prompt", "x", "--device", "cpu", "--checkpoint"])
            .arg(tmp.path().join("nope")),
    );
    assert!(err.contains("nope"), "{err}");
}
