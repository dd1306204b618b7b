//! `lmtrain bench` prints the reference's RESULT format, one line without and one with
//! clipping and EMA, and its parameter count equals the reference's for the same shape.

use super::common::*;

#[test]
fn bench_prints_reference_result_lines() {
    let out = run_ok(lmtrain().args([
        "bench",
        "--steps",
        "3",
        "--warmup-steps",
        "1",
        "--device",
        "cpu",
        "--layers",
        "2",
        "--d-model",
        "64",
        "--heads",
        "4",
        "--seq",
        "64",
        "--batch",
        "8",
        "--vocab",
        "512",
    ]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("RESULT "))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, clip) in lines.iter().zip(["clip_ema=0", "clip_ema=1"]) {
        for key in [
            "impl=lmtrain",
            "backend=cpu",
            "ms_per_step=",
            "tokens_per_s=",
            "max_mem_gib=",
            "loss_first=",
            // torch_gpt_bench.py reports 136960 parameters for this shape (tied head counted once).
            "params=136960",
            clip,
        ] {
            assert!(line.contains(key), "{key} missing in {line}");
        }
    }
}

/// The speed alternatives of the model run through the same bench and say so on the RESULT line.
#[test]
fn bench_runs_the_compute_alternatives() {
    let out = run_ok(lmtrain().args([
        "bench",
        "--steps",
        "2",
        "--warmup-steps",
        "1",
        "--device",
        "cpu",
        "--no-clip-ema-line",
        "--bf16-matmuls",
        "--gather-embedding",
    ]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("a RESULT line");
    assert!(line.contains("bf16_matmuls=1 gather_embedding=1"), "{line}");
    assert!(!line.contains("loss_last=NaN"), "{line}");
}
