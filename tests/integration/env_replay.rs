//! lmtrain's MuJoCo environments reproduce Gymnasium v4's own rollouts (tests/fixtures/env/,
//! recorded by scripts/make_env_fixtures.py) within 1e-9 on every value of every step, and
//! `lmtrain env replay` reports agreement and disagreement as it says.

use std::path::PathBuf;

use lmtrain::env::replay::{load, replay, replay_file, TOLERANCE};

use super::common::*;

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/env"))
        .expect("tests/fixtures/env")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn fixture(stem: &str) -> PathBuf {
    repo().join(format!("tests/fixtures/env/{stem}.json"))
}

#[test]
fn every_fixture_replays_within_tolerance() {
    let files = fixtures();
    let mut envs_seen = std::collections::BTreeSet::new();
    for file in &files {
        let r = replay_file(file).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
        assert!(r.steps > 0, "{}: no steps", file.display());
        assert!(
            r.passed(),
            "{}: largest deviation {:e} at {}; mismatches {:?}",
            file.display(),
            r.max_deviation,
            r.worst,
            r.mismatches
        );
        envs_seen.insert(r.env);
    }
    for id in lmtrain::env::ENV_IDS {
        assert!(envs_seen.contains(id), "no fixture for {id}");
    }
}

#[test]
fn fixtures_cover_termination_and_the_time_limit() {
    let mut terminated = 0;
    let mut truncated = 0;
    for file in fixtures() {
        let rec = load(&file).unwrap();
        let last = rec.steps.last().unwrap();
        terminated += usize::from(last.terminated);
        truncated += usize::from(last.truncated);
    }
    assert!(terminated > 0 && truncated > 0, "{terminated} {truncated}");
}

#[test]
fn a_changed_reward_or_flag_is_caught() {
    let mut rec = load(&fixture("walker2d_seed0")).unwrap();
    rec.steps[5].reward += 1e-6;
    let r = replay(&rec).unwrap();
    assert!(!r.passed());
    assert!((r.max_deviation - 1e-6).abs() < 1e-9, "{}", r.max_deviation);
    assert_eq!(r.worst, "step 5 reward");

    let mut rec = load(&fixture("hopper_seed0")).unwrap();
    let last = rec.steps.len() - 1;
    rec.steps[last].terminated = false;
    let r = replay(&rec).unwrap();
    assert!(r.max_deviation <= TOLERANCE);
    assert!(!r.passed(), "a flipped flag must fail");
    assert!(r.mismatches[0].contains("terminated"), "{:?}", r.mismatches);
}

#[test]
fn cli_replay_prints_the_largest_deviation_last() {
    let out = run_ok(
        lmtrain()
            .args(["env", "replay"])
            .arg(fixture("walker2d_seed1"))
            .arg(fixture("humanoid_seed0")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("largest absolute deviation "), "{stdout}");
    let dev: f64 = last.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(dev <= TOLERANCE, "{stdout}");
}

#[test]
fn cli_replay_fails_on_a_deviation_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("ant_seed0")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let obs = &mut json["steps"][3]["obs"][2];
    *obs = serde_json::json!(obs.as_f64().unwrap() + 2e-9);
    let bad = tmp.path().join("ant_bad.json");
    std::fs::write(&bad, serde_json::to_string(&json).unwrap()).unwrap();
    let out = lmtrain()
        .args(["env", "replay"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("FAILED") && stdout.contains("step 3 obs[2]"),
        "{stdout}"
    );
    let dev: f64 = stderr
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no deviation at the end of: {stderr}"));
    assert!(dev > TOLERANCE && dev < 1e-8, "{stderr}");
}

#[test]
fn cli_replay_rejects_a_bad_action_length_and_a_bad_file() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("hopper_seed1")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["steps"][0]["action"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(0.5));
    let bad = tmp.path().join("hopper_bad.json");
    std::fs::write(&bad, serde_json::to_string(&json).unwrap()).unwrap();
    let err = run_err(lmtrain().args(["env", "replay"]).arg(&bad));
    assert!(err.contains("hopper_bad.json"), "{err}");
    assert!(err.contains("4 values") && err.contains("has 3"), "{err}");

    let junk = tmp.path().join("junk.json");
    std::fs::write(&junk, "{\"env\": \"Hopper-v4\"}").unwrap();
    let err = run_err(lmtrain().args(["env", "replay"]).arg(&junk));
    assert!(
        err.contains("junk.json") && err.contains("not a recording"),
        "{err}"
    );
}
