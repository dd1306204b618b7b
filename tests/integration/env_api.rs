//! The environment interface later code relies on: dimensions and bounds, seeded resets with v4's
//! noise, state get/set, the time limit, and clear errors for bad input.

use lmtrain::env::{make, Env, State, StepError, ENV_IDS, MAX_EPISODE_STEPS};

use super::common::*;

#[test]
fn dimensions_match_gymnasium_v4() {
    let expected = [
        ("Walker2d-v4", 17, 6),
        ("Hopper-v4", 11, 3),
        ("HalfCheetah-v4", 17, 6),
        ("Ant-v4", 27, 8),
        ("Humanoid-v4", 376, 17),
    ];
    for (id, obs, act) in expected {
        let mut env = make(id).unwrap();
        assert_eq!(env.id(), id);
        assert_eq!((env.obs_dim(), env.action_dim()), (obs, act), "{id}");
        let (low, high) = env.action_bounds();
        assert_eq!((low.len(), high.len()), (act, act));
        let bound: f32 = if id == "Humanoid-v4" { 0.4 } else { 1.0 };
        assert!(
            low.iter().all(|&l| l == -bound) && high.iter().all(|&h| h == bound),
            "{id}"
        );
        let o = env.reset(0).unwrap();
        assert_eq!(o.len(), obs, "{id}");
        let s = env.step(&vec![0.0; act]).unwrap();
        assert_eq!(s.obs.len(), obs, "{id}");
    }
    assert_eq!(ENV_IDS.len(), expected.len());
}

#[test]
fn reset_is_seeded_and_draws_v4_noise() {
    let mut env = make("Walker2d-v4").unwrap();
    let a = env.reset(1).unwrap();
    let state_a = env.state();
    let b = env.reset(1).unwrap();
    assert_eq!(a, b);
    let c = env.reset(2).unwrap();
    assert_ne!(a, c);
    // Walker2d: qpos0 = [0, 1.25, 0, ...], uniform noise of scale 5e-3 on qpos and qvel.
    assert!((state_a.qpos[1] - 1.25).abs() <= 5e-3);
    assert!(state_a
        .qpos
        .iter()
        .enumerate()
        .all(|(i, q)| i == 1 || q.abs() <= 5e-3));
    assert!(state_a.qvel.iter().all(|v| v.abs() <= 5e-3 && *v != 0.0));
    // HalfCheetah's qvel noise is 0.1 * N(0, 1): over many resets its spread is about 0.1.
    let mut cheetah = make("HalfCheetah-v4").unwrap();
    let mut vs = Vec::new();
    for seed in 0..200 {
        cheetah.reset(seed).unwrap();
        vs.extend(cheetah.state().qvel);
    }
    let sd = (vs.iter().map(|v| v * v).sum::<f64>() / vs.len() as f64).sqrt();
    assert!((sd - 0.1).abs() < 0.01, "sd {sd}");
    assert!(
        vs.iter().any(|v| v.abs() > 0.2),
        "normal, not uniform on ±0.1"
    );
}

#[test]
fn state_round_trips_and_replays_deterministically() {
    let mut env = make("Hopper-v4").unwrap();
    env.reset(3).unwrap();
    let start = env.state();
    let actions: Vec<Vec<f32>> = (0..10)
        .map(|i| vec![0.1 * i as f32 - 0.5, 0.3, -0.2])
        .collect();
    let first: Vec<_> = actions.iter().map(|a| env.step(a).unwrap()).collect();
    let obs = env.reset_to(&start).unwrap();
    assert_eq!(env.state(), start);
    assert_eq!(obs.len(), 11);
    let second: Vec<_> = actions.iter().map(|a| env.step(a).unwrap()).collect();
    assert_eq!(first, second);
    // set_state keeps the episode going from a given state.
    let mid = env.state();
    env.step(&actions[0]).unwrap();
    env.set_state(&mid).unwrap();
    assert_eq!(env.state(), mid);
}

#[test]
fn reward_is_the_sum_of_its_terms() {
    for id in ENV_IDS {
        let mut env = make(id).unwrap();
        env.reset(5).unwrap();
        let n = env.action_dim();
        let s = env.step(&vec![0.3; n]).unwrap();
        let t = s.terms;
        let sum = t.forward + t.healthy - t.ctrl_cost - t.contact_cost;
        assert!(
            (s.reward - sum).abs() < 1e-12,
            "{id}: {} vs {sum}",
            s.reward
        );
        assert!(t.ctrl_cost > 0.0, "{id}");
    }
}

#[test]
fn time_limit_truncates_at_1000_steps() {
    let mut env = make("HalfCheetah-v4").unwrap();
    env.reset(0).unwrap();
    let zero = vec![0.0; env.action_dim()];
    for i in 1..=MAX_EPISODE_STEPS {
        let s = env.step(&zero).unwrap();
        assert_eq!(s.truncated, i == MAX_EPISODE_STEPS, "step {i}");
        assert!(!s.terminated);
    }
    env.reset(1).unwrap();
    assert!(
        !env.step(&zero).unwrap().truncated,
        "reset restarts the count"
    );
}

#[test]
fn bad_actions_are_clear_errors() {
    let mut env: Box<dyn Env> = make("Walker2d-v4").unwrap();
    env.reset(0).unwrap();
    let err = env.step(&[0.0; 5]).unwrap_err();
    assert!(matches!(
        err,
        StepError::ActionLength {
            expected: 6,
            got: 5,
            ..
        }
    ));
    assert!(err.to_string().contains("Walker2d-v4"), "{err}");
    let mut a = [0.0f32; 6];
    a[2] = f32::NAN;
    let err = env.step(&a).unwrap_err();
    assert!(
        matches!(err, StepError::ActionNotFinite { index: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("action[2]"), "{err}");
}

#[test]
fn a_bad_state_is_an_error_and_instability_is_reported_as_such() {
    let mut env = make("Hopper-v4").unwrap();
    let bad = State {
        qpos: vec![0.0; 5],
        qvel: vec![0.0; 6],
    };
    let err = format!("{:#}", env.reset_to(&bad).unwrap_err());
    assert!(err.contains("6 qpos"), "{err}");
    // A huge velocity makes MuJoCo's accelerations blow up: an instability, not a reward.
    env.reset(0).unwrap();
    let mut s = env.state();
    s.qvel[2] = 1e300;
    env.set_state(&s).unwrap();
    let err = env.step(&[0.0; 3]).unwrap_err();
    assert!(matches!(err, StepError::Unstable { .. }), "{err}");
    assert!(err.to_string().contains("instability"), "{err}");
}

#[test]
fn unknown_env_and_missing_model_name_the_fix() {
    let err = format!("{:#}", make("Swimmer-v4").err().unwrap());
    assert!(err.contains("Walker2d-v4"), "{err}");
    // The binary with the model directory pointed elsewhere: the error names file and fix.
    let tmp = tempfile::tempdir().unwrap();
    let fixture = repo().join("tests/fixtures/env/hopper_seed1.json");
    let err = run_err(
        lmtrain()
            .env("LMTRAIN_MUJOCO_DIR", tmp.path())
            .args(["env", "replay"])
            .arg(&fixture),
    );
    assert!(err.contains("hopper.xml"), "{err}");
    assert!(err.contains("scripts/install_mujoco.sh"), "{err}");
}

#[test]
fn cli_bench_prints_a_result_line() {
    let out = run_ok(lmtrain().args([
        "env",
        "bench",
        "--env",
        "Ant-v4",
        "--steps",
        "40",
        "--threads",
        "2",
        "--envs",
        "4",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_default();
    assert!(
        line.contains("env=Ant-v4 threads=2 envs=4 steps=40"),
        "{stdout}"
    );
    let rate: f64 = line.rsplit("steps_per_s=").next().unwrap().parse().unwrap();
    assert!(rate > 0.0, "{stdout}");
    let err = run_err(lmtrain().args(["env", "bench", "--threads", "2", "--envs", "3"]));
    assert!(
        err.contains("--envs (3) must be a positive multiple of --threads (2)"),
        "{err}"
    );
}
