//! Data-parallel training through `lmtrain train` (issue 19) on the CPU: `device = ["cpu",
//! "cpu"]` runs two simulated workers with the in-process all-reduce stand-in. On the linear
//! BC testbed (a per-pair mean loss, no dropout) two workers with half of every micro-batch
//! take the steps one worker takes with all of it, and a checkpoint written by two workers
//! resumes with one on the same trajectory.

use std::path::Path;

use crate::common::{lmtrain, metrics, repo, run_err, run_ok};

/// The linear testbed, shortened: AdamW with clipping, two micro-batches per step, the EMA
/// past its burn-in, logs every 5 steps, validation and rollouts every 10.
fn args(out: &Path, name: &str, device: &str, steps: u64) -> Vec<String> {
    let mut a = vec![
        "--config".to_string(),
        repo().join("configs/bc/linear.toml").display().to_string(),
    ];
    for s in [
        format!("train.out_dir={:?}", out.display().to_string()),
        format!("train.run_name={name:?}"),
        format!("device={device}"),
        format!("train.max_steps={steps}"),
        "train.log_every=5".into(),
        "linear.samples=2000".into(),
        "optim.kind=\"adamw\"".into(),
        "optim.lr=0.01".into(),
        "optim.grad_clip=0.5".into(),
        "optim.grad_accum=2".into(),
        "ema.burn_in=5".into(),
        "eval.val_every=10".into(),
        "eval.rollout_every=10".into(),
        "checkpoint.every=10".into(),
    ] {
        a.push("--set".into());
        a.push(s);
    }
    a
}

/// Every row of `b` matches `a`'s row of the same step: the counters exactly, the losses
/// within 1e-5 relative, the other metrics (gradient norm, rollout costs) within 1e-4.
fn assert_same_rows(a: &[serde_json::Value], b: &[serde_json::Value], what: &str) {
    assert!(!b.is_empty(), "{what}: no rows");
    for rb in b {
        let step = rb["step"].as_u64().unwrap();
        let ra = a
            .iter()
            .find(|r| r["step"].as_u64() == Some(step))
            .unwrap_or_else(|| panic!("{what}: no row for step {step}"));
        let (oa, ob) = (ra.as_object().unwrap(), rb.as_object().unwrap());
        let keys = |o: &serde_json::Map<String, serde_json::Value>| {
            let mut k: Vec<String> = o.keys().filter(|k| !k.contains("per_s")).cloned().collect();
            k.retain(|k| k != "rollout_seconds");
            k.sort();
            k
        };
        assert_eq!(keys(oa), keys(ob), "{what}: step {step}'s keys differ");
        for k in keys(oa) {
            let (x, y) = (&oa[&k], &ob[&k]);
            if matches!(k.as_str(), "step" | "tokens" | "lr") || !x.is_f64() {
                assert_eq!(x, y, "{what}: step {step}, {k}");
                continue;
            }
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let tol = if k.contains("loss") { 1e-5 } else { 1e-4 };
            assert!(
                (x - y).abs() <= tol * x.abs().max(1e-12),
                "{what}: step {step}, {k}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn two_cpu_workers_reproduce_one_and_resume_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    run_ok(lmtrain().args(args(out, "one", "\"cpu\"", 30)));
    run_ok(lmtrain().args(args(out, "two", "[\"cpu\", \"cpu\"]", 30)));
    let one = metrics(&out.join("one"));
    let two = metrics(&out.join("two"));
    assert_eq!(one.len(), two.len());
    assert!(one.iter().any(|r| r.get("train_loss").is_some()));
    assert!(one.iter().any(|r| r.get("val_loss_ema").is_some()));
    assert_same_rows(&one, &two, "2 workers vs 1");
    let log = std::fs::read_to_string(out.join("two/train.log")).unwrap();
    assert!(log.contains("2 simulated workers"), "{log}");

    // Two workers to step 20, then one from their checkpoint to step 30.
    run_ok(lmtrain().args(args(out, "split", "[\"cpu\", \"cpu\"]", 20)));
    let split = out.join("split");
    run_ok(lmtrain().args([
        "train",
        "--resume",
        &split.display().to_string(),
        "--set",
        "device=\"cpu\"",
        "--set",
        "train.max_steps=30",
    ]));
    let rows = metrics(&split);
    assert_eq!(rows.last().unwrap()["step"].as_u64(), Some(30));
    assert!(rows.iter().any(|r| r["step"].as_u64() == Some(25)));
    assert_same_rows(&one, &rows, "2 workers to 20, resumed with 1");
}

/// A micro-batch that does not split over the workers, and a device list that is neither
/// CUDA devices nor the CPU stand-in, are refused with the keys to change.
#[test]
fn bad_data_parallel_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(tmp.path(), "odd", "[\"cpu\", \"cpu\"]", 2);
    a.extend(["--set".into(), "train.batch_size=7".into()]);
    let e = run_err(lmtrain().args(a));
    assert!(
        e.contains("train.batch_size") && e.contains("device"),
        "{e}"
    );
    let e = run_err(lmtrain().args(args(tmp.path(), "mixed", "[\"cuda:0\", \"cpu\"]", 2)));
    assert!(e.contains("device"), "{e}");
}

/// `train.step_timeout_s`: a worker that never finishes step 13 (fault `stall-worker:1@13`)
/// would leave the other waiting in the all-reduce for ever; the watchdog ends the run with
/// exit status 3 and a message naming the late worker, and the checkpoint of step 10 resumes.
#[test]
fn a_stalled_worker_stops_the_run_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let mut a = args(out, "stall", "[\"cpu\", \"cpu\"]", 30);
    a.extend(["--set".into(), "train.step_timeout_s=1".into()]);
    let mut child = lmtrain()
        .args(a)
        .env("LMTRAIN_FAULT", "stall-worker:1@13")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Without the watchdog the run hangs: kill it after a minute and fail.
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > 60 {
            child.kill().unwrap();
            panic!("the stalled run was still hanging after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    for want in [
        "step 13 has not finished",
        "worker 1 (cpu): still computing gradients",
        "worker 0 (cpu): waiting in the all-reduce",
        "--resume",
    ] {
        assert!(err.contains(want), "{want:?} missing from stderr: {err}");
    }
    let run = out.join("stall");
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("step 13 has not finished"), "{log}");
    run_ok(lmtrain().args([
        "train",
        "--resume",
        &run.display().to_string(),
        "--set",
        "train.max_steps=15",
    ]));
    let rows = metrics(&run);
    assert_eq!(rows.last().unwrap()["step"].as_u64(), Some(15));
}

/// A run on several CUDA devices checks NCCL (and CUDA) before it writes anything: on a
/// machine without them it fails at start, naming what is missing, with no run directory left.
#[test]
fn a_cuda_list_without_nccl_or_cuda_fails_before_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let e = run_err(
        lmtrain()
            .args(args(tmp.path(), "gpus", "[\"cuda:0\", \"cuda:1\"]", 2))
            .env("XDG_CACHE_HOME", tmp.path().join("cache")),
    );
    assert!(
        e.contains("NCCL") || e.contains("CUDA") || e.contains("cuda"),
        "{e}"
    );
    assert!(
        !tmp.path().join("gpus").exists(),
        "a run directory was left"
    );
}

/// NCCL found only as libnccl.so.2 (here through LMTRAIN_NCCL, a stand-in library): lmtrain
/// links it as libnccl.so in a cache directory and starts again with that directory in front
/// of LD_LIBRARY_PATH, where cudarc's loader finds it. Skipped on a machine with an NVIDIA
/// driver (the stand-in would then be called as NCCL).
#[cfg(feature = "cuda")]
#[test]
fn libnccl_so_2_alone_is_linked_and_loaded() {
    if Path::new("/dev/nvidiactl").exists() {
        eprintln!("skipped: an NVIDIA driver is present");
        return;
    }
    let Some(stand_in) = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.exists()) else {
        eprintln!("skipped: no libz.so.1 to stand in for NCCL");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("wheel/nvidia/nccl/lib/libnccl.so.2");
    std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
    std::fs::copy(stand_in, &lib).unwrap();
    let e = run_err(
        lmtrain()
            .args(["check-nccl"])
            .env("LMTRAIN_NCCL", lib.parent().unwrap())
            .env("XDG_CACHE_HOME", tmp.path().join("cache")),
    );
    assert!(e.contains("starting again"), "{e}");
    // The second process loaded it, and stopped at the missing GPU.
    assert!(e.contains("CUDA is unusable here"), "{e}");
    let links: Vec<_> = std::fs::read_dir(tmp.path().join("cache/lmtrain/nccl"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(links.len(), 1);
    assert_eq!(
        std::fs::read_link(links[0].path().join("libnccl.so")).unwrap(),
        lib
    );
}
