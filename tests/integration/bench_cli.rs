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
        "--fused",
    ]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("a RESULT line");
    assert!(
        line.contains("bf16_matmuls=1 gather_embedding=1 fused_attention=1 fused_layer_norm=1 fused_cross_entropy=1 fused_bias=1 flash_attention=0"),
        "{line}"
    );
    assert!(!line.contains("loss_last=NaN"), "{line}");
}

/// `check-ops` compares every fused op with burn's plain ops on the device and prints one line
/// per op; on the CPU they agree to float rounding, far inside the default bounds.
#[test]
fn check_ops_prints_one_passing_line_per_op() {
    let out = run_ok(lmtrain().args(["check-ops", "--device", "cpu"]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("CHECK ")).collect();
    assert_eq!(lines.len(), 9, "{stdout}");
    for line in &lines {
        assert!(line.ends_with(" ok"), "{line}");
    }
    assert!(lines[0].contains("dq=") && lines[0].contains("dk=") && lines[0].contains("dv="));
    assert!(lines
        .iter()
        .any(|l| l.contains("op=\"bias ") && l.contains("dbias=")));
    assert!(lines
        .iter()
        .any(|l| l.contains("op=\"linear bf16 ") && l.contains("dw=") && l.contains("dbias=")));
}

/// A bound no real comparison can meet makes `check-ops` fail and say which lines.
#[test]
fn check_ops_fails_over_its_bound() {
    let out = lmtrain()
        .args(["check-ops", "--device", "cpu", "--max-rel-bf16", "1e-9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("bf16") && l.ends_with(" FAIL")),
        "{stdout}"
    );
    assert!(stderr.contains("beyond the bound"), "{stderr}");
}
