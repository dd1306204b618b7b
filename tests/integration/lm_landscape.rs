//! The landscape probe of a language-model checkpoint (`lmtrain landscape`): its centre (s = 0)
//! is the checkpoint itself, so it reproduces the trainer's validation loss and generation
//! metric at the checkpoint's step, raw and EMA, greedy and sampled.

use super::common::*;

/// The value of `key` in the metrics row of `step`.
fn logged(rows: &[serde_json::Value], step: u64, key: &str) -> f64 {
    rows.iter()
        .find(|r| r["step"] == step && r.get(key).is_some())
        .and_then(|r| r[key].as_f64())
        .unwrap_or_else(|| panic!("no {key} at step {step}"))
}

/// Rows of landscape.csv as (direction, s, val_loss, metric), after checking the header.
fn probe_rows(out: &std::path::Path, metric: &str) -> Vec<(String, f64, f64, f64)> {
    let csv = std::fs::read_to_string(out.join("landscape.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(format!("direction,s,val_loss,{metric}").as_str())
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| f[i].parse::<f64>().unwrap();
            (f[0].to_string(), num(1), num(2), num(3))
        })
        .collect()
}

#[test]
fn the_lm_probe_centre_reproduces_the_trainers_val_loss_and_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 400);
    let cfg = tiny_config(tmp.path(), &data, "");
    let mut train = lmtrain();
    train.arg("--config").arg(&cfg);
    for s in [
        "train.run_name=l",
        "train.max_steps=8",
        "eval.generate_every=8",
        "eval.num_prompts=3",
        "eval.prompt_tokens=8",
        "eval.generate_tokens=24",
        "eval.sample_seeds=1",
        "eval.story_checker=true",
    ] {
        train.args(["--set", s]);
    }
    run_ok(&mut train);
    let run = tmp.path().join("runs/l");
    let rows = metrics(&run);
    let probe = |out: &std::path::Path, extra: &[&str]| {
        let mut cmd = lmtrain();
        cmd.args(["landscape", "--checkpoint"])
            .arg(&run)
            .args(["--points", "3", "--radius", "0.5", "--val-windows", "8"])
            .arg("--out")
            .arg(out)
            .args(extra);
        cmd
    };

    // Raw weights, the default metric (greedy validity): 1 random + the gradient direction.
    let land = tmp.path().join("land");
    run_ok(&mut probe(&land, &["--directions", "1"]));
    let pts = probe_rows(&land, "gen_valid_greedy");
    let names: Vec<&str> = pts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        ["random0", "random0", "random0", "gradient", "gradient", "gradient"]
    );
    let val = logged(&rows, 8, "val_loss_raw");
    let valid = logged(&rows, 8, "gen_valid_greedy_raw");
    for p in pts.iter().filter(|p| p.1 == 0.0) {
        assert!((p.2 - val).abs() <= 1e-6 * val, "centre {p:?} vs {val}");
        assert_eq!(p.3, valid, "centre {p:?}");
    }
    // Away from the centre the weights move: the loss changes.
    assert!(
        pts.iter().filter(|p| p.1 != 0.0).all(|p| p.2 != val),
        "{pts:?}"
    );
    let md = std::fs::read_to_string(land.join("landscape.md")).unwrap();
    assert!(
        md.contains("Took ") && md.contains("valid (greedy)"),
        "{md}"
    );
    assert!(land.join("gradient_gen_valid_greedy.svg").is_file());

    // EMA weights, a continuous metric of the sampled generations; the gradient direction only.
    let ema = tmp.path().join("ema");
    run_ok(&mut probe(
        &ema,
        &["--ema", "--directions", "0", "--metric", "distinct2_sample"],
    ));
    let pts = probe_rows(&ema, "gen_distinct2_sample");
    assert_eq!(pts.len(), 3);
    let centre = &pts[1];
    assert_eq!(centre.1, 0.0);
    let val = logged(&rows, 8, "val_loss_ema");
    assert!((centre.2 - val).abs() <= 1e-6 * val, "{centre:?} vs {val}");
    assert_eq!(centre.3, logged(&rows, 8, "gen_distinct2_sample_ema"));

    // Flags of the other kind of checkpoint, and unknown metrics, are refused by name.
    let err = run_err(probe(&ema, &["--metric", "perplexity"]).args(["--directions", "0"]));
    assert!(
        err.contains("perplexity") && err.contains("validity"),
        "{err}"
    );
    let err = run_err(probe(&ema, &["--episodes", "2"]).args(["--directions", "0"]));
    assert!(err.contains("--episodes"), "{err}");
}
