//! The GVA evaluation during training: long generations at a fixed cadence for raw and EMA
//! weights, their metrics in metrics.jsonl, every generation in generations.jsonl, and the
//! butterfly horizon carried across a resume.

use super::common::*;

/// Adds `--set` for each override.
fn set_all(cmd: &mut std::process::Command, sets: &[&str]) {
    for s in sets {
        cmd.args(["--set", s]);
    }
}

fn generation_rows(run: &std::path::Path) -> Vec<serde_json::Value> {
    metrics(run)
        .into_iter()
        .filter(|r| r.get("gen_rep4_greedy_raw").is_some())
        .collect()
}

#[test]
fn generations_are_scored_logged_and_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 400);
    let cfg = tiny_config(tmp.path(), &data, "");
    let common = [
        "train.run_name=g",
        "eval.generate_every=3",
        "eval.num_prompts=3",
        "eval.prompt_tokens=8",
        "eval.generate_tokens=40",
        "eval.sample_seeds=2",
        "eval.story_checker=true",
    ];
    let mut cmd = lmtrain();
    cmd.arg("--config")
        .arg(&cfg)
        .args(["--set", "train.max_steps=6"]);
    set_all(&mut cmd, &common);
    run_ok(&mut cmd);
    let run = tmp.path().join("runs/g");
    let rows = generation_rows(&run);
    let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![3, 6]);
    for r in &rows {
        for w in ["raw", "ema"] {
            // Paired with validation at every generation evaluation.
            assert!(r[format!("val_loss_{w}")].is_number(), "{r}");
            assert!(r[format!("val_loss_pos_0_64_{w}")].is_number(), "{r}");
            for m in ["greedy", "sample"] {
                for metric in [
                    "rep2",
                    "rep4",
                    "distinct2",
                    "distinct4",
                    "longest_span",
                    "valid",
                ] {
                    let key = format!("gen_{metric}_{m}_{w}");
                    assert!(r[&key].is_number(), "{key} missing in {r}");
                }
            }
            assert!(
                r.get(format!("gen_judge_nll_greedy_{w}")).is_none(),
                "no judge: absent"
            );
            // The failure causes partition the invalid stories: valid + Σ invalid_* = 1.
            for m in ["greedy", "sample"] {
                let causes: f64 = [
                    "no_hero",
                    "wrong_character_loses",
                    "wrong_character_at_end",
                    "pronoun_mismatch",
                    "object_mismatch",
                    "incomplete",
                ]
                .iter()
                .map(|c| r[format!("gen_invalid_{c}_{m}_{w}")].as_f64().unwrap())
                .sum();
                let valid = r[format!("gen_valid_{m}_{w}")].as_f64().unwrap();
                assert!((valid + causes - 1.0).abs() < 1e-9, "{m} {w}: {r}");
            }
        }
    }
    // The horizon needs a previous evaluation: absent at the first, present at the second.
    assert!(rows[0].get("gen_horizon_greedy_raw").is_none());
    assert!(rows[1]["gen_horizon_greedy_raw"].is_number());

    // 2 evaluations × 2 weights × 3 prompts × (1 greedy + 2 sampled).
    let gens = std::fs::read_to_string(run.join("generations.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = gens
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2 * 2 * 3 * 3);
    for key in [
        "step",
        "weights",
        "prompt_id",
        "seed",
        "mode",
        "tokens",
        "text",
        "verdict",
    ] {
        assert!(records[0].get(key).is_some(), "{key}");
    }
    // Every story has a verdict, and the valid ones make up the logged rate.
    for r in &records {
        let verdict = r["verdict"].as_str().unwrap();
        assert!(!verdict.is_empty());
    }
    let n_valid = |step: u64, mode: &str, w: &str| {
        records
            .iter()
            .filter(|r| r["step"] == step && r["mode"] == mode && r["weights"] == w)
            .filter(|r| r["verdict"] == "valid")
            .count() as f64
    };
    assert_eq!(
        n_valid(3, "greedy", "raw") / 3.0,
        rows[0]["gen_valid_greedy_raw"].as_f64().unwrap()
    );
    // Same prompts and seeds at every evaluation: greedy generations of one evaluation are a
    // deterministic function of the weights, so re-running them reproduces them.
    let greedy_at = |step: u64| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["step"] == step && r["mode"] == "greedy" && r["weights"] == "raw")
            .map(|r| r["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(greedy_at(3).len(), 3);

    // Resume: the first evaluation after it has a horizon, from generations.jsonl.
    let mut cmd = lmtrain();
    cmd.arg("--resume").arg(&run).arg("--config").arg(&cfg);
    cmd.args(["--set", "train.max_steps=9"]);
    set_all(&mut cmd, &common);
    run_ok(&mut cmd);
    let rows = generation_rows(&run);
    assert_eq!(rows.last().unwrap()["step"].as_u64().unwrap(), 9);
    assert!(rows.last().unwrap()["gen_horizon_greedy_ema"].is_number());

    // A judge with the same tokenizer scores every continuation; another tokenizer is refused.
    let judge = format!("eval.judge_checkpoint={}", run.display());
    let tok = format!("tokenizer.path={}", run.join("tokenizer.json").display());
    let mut cmd = lmtrain();
    cmd.arg("--config").arg(&cfg);
    set_all(&mut cmd, &common);
    cmd.args([
        "--set",
        "train.run_name=judged",
        "--set",
        "train.max_steps=3",
    ]);
    cmd.args(["--set", &judge, "--set", &tok]);
    run_ok(&mut cmd);
    let rows = generation_rows(&tmp.path().join("runs/judged"));
    for key in [
        "gen_judge_nll_greedy_raw",
        "gen_judge_nll_sample_ema",
        "gen_judge_nll_pos_0_64_greedy_raw",
    ] {
        let v = rows[0][key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    let other = format!("tokenizer.path={}", tmp.path().join("other.json").display());
    let mut cmd = lmtrain();
    cmd.arg("--config").arg(&cfg);
    set_all(&mut cmd, &common);
    cmd.args([
        "--set",
        "train.run_name=misjudged",
        "--set",
        "tokenizer.vocab_size=290",
    ]);
    cmd.args(["--set", &judge, "--set", &other]);
    let err = run_err(&mut cmd);
    assert!(err.contains("judge") && err.contains("tokenizer"), "{err}");
}
