//! The fused ops against burn's plain ops on the CPU (flex backend), forward and gradients.

use burn::tensor::Device;

use super::check::{check_all, CheckShapes, OpCheck};

fn checks() -> Vec<OpCheck> {
    let checks = check_all(CheckShapes::small(), 7, &Device::flex());
    for c in &checks {
        let parts: Vec<String> = c
            .deviations
            .iter()
            .map(|d| format!("{} {:.2e}", d.tensor, d.max_rel))
            .collect();
        println!("{}: {}", c.op, parts.join(", "));
    }
    checks
}

#[test]
fn f32_ops_match_the_plain_ops_to_rounding() {
    for c in checks().iter().filter(|c| !c.bf16) {
        assert!(c.worst() < 1e-5, "{c:?}");
    }
}

#[test]
fn bf16_attention_is_close_but_really_bf16() {
    let checks = checks();
    let bf16 = checks
        .iter()
        .find(|c| c.bf16)
        .expect("a bf16 attention check");
    // bf16 keeps 8 bits of mantissa: errors of a few 1e-3 of the scale, never zero.
    assert!(bf16.worst() < 5e-2, "{bf16:?}");
    assert!(bf16.worst() > 1e-5, "bf16 changed nothing: {bf16:?}");
}

#[test]
fn every_check_covers_the_output_and_each_gradient() {
    let checks = checks();
    assert_eq!(checks.len(), 9);
    let names: Vec<Vec<&str>> = checks
        .iter()
        .map(|c| c.deviations.iter().map(|d| d.tensor).collect())
        .collect();
    assert_eq!(names[0], ["out", "dq", "dk", "dv"]);
    assert_eq!(names[3], ["out", "dx", "dgamma", "dbeta"]);
    assert_eq!(names[4], ["out", "dx", "dbias"]);
    assert_eq!(names[5], ["loss", "dlogits"]);
    assert_eq!(names[6], ["out", "dq", "dk", "dv"]);
    assert_eq!(names[7], ["out", "dx", "dw", "dbias"]);
    assert_eq!(names[8], ["out", "dx", "dw"]);
}

/// The bf16 linear's checks feed it bf16-representable values: on the CPU it then agrees with
/// the f32 plain ops to f32 rounding, so a wrong gradient cannot hide under bf16's tolerance.
#[test]
fn bf16_linear_checks_agree_to_f32_rounding_on_exact_inputs() {
    let checks = checks();
    let linear: Vec<&OpCheck> = checks
        .iter()
        .filter(|c| c.op.starts_with("linear bf16"))
        .collect();
    assert_eq!(linear.len(), 2);
    for c in linear {
        assert!(!c.bf16 && c.worst() < 1e-5, "{c:?}");
    }
}
