//! Fault injection for the fault suite (scripts/fault_suite.sh), in the normal build: the
//! environment variable `LMTRAIN_FAULT` lists faults, comma-separated, that fire at fixed points
//! of a run. Unset (the normal case) costs one check of a cached empty list per point.
//!
//! | fault | effect |
//! | --- | --- |
//! | `pause-in-checkpoint-write:S` | sleep S seconds inside every checkpoint write, after the temporary file is written and before the rename (a kill then leaves a temporary file) |
//! | `fail-write-after:N` | the checkpoint writes after the first N of this process fail as a full disk would (`No space left on device`), before the rename |
//! | `pause-in-validation:S` | sleep S seconds at the start of every validation |
//! | `pause-in-generation:S` | sleep S seconds at the start of every generation evaluation |
//! | `pause-in-step:S` | sleep S seconds before every optimizer step |
//! | `nan-loss-at:N` | make step N's loss (and so its gradients) NaN, once per process |
//! | `stall-worker:R@N` | data-parallel worker R never finishes step N (it sleeps before its gradients), as a hung GPU would; the others wait for it in the all-reduce |
//!
//! Each firing prints `fault: …` on stderr first, so a script can wait for it and then signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Result};

/// Where a fault can fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    CheckpointWrite,
    Validation,
    Generation,
    Step,
}

#[derive(Clone, Debug, PartialEq)]
enum Fault {
    Pause(Point, f64),
    FailWriteAfter(u64),
    NanLossAt(u64),
    StallWorker(usize, u64),
}

/// Parses a `LMTRAIN_FAULT` value.
fn parse(spec: &str) -> Result<Vec<Fault>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, arg) = item.split_once(':').unwrap_or((item, ""));
        let secs = || -> Result<f64> {
            match arg.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
                _ => bail!("LMTRAIN_FAULT: {item:?} needs a number of seconds ≥ 0, e.g. {name}:5"),
            }
        };
        out.push(match name {
            "pause-in-checkpoint-write" => Fault::Pause(Point::CheckpointWrite, secs()?),
            "pause-in-validation" => Fault::Pause(Point::Validation, secs()?),
            "pause-in-generation" => Fault::Pause(Point::Generation, secs()?),
            "pause-in-step" => Fault::Pause(Point::Step, secs()?),
            "nan-loss-at" => match arg.parse::<u64>() {
                Ok(n) => Fault::NanLossAt(n),
                Err(_) => bail!("LMTRAIN_FAULT: {item:?} needs a step number, e.g. nan-loss-at:7"),
            },
            "stall-worker" => match arg
                .split_once('@')
                .and_then(|(r, n)| Some((r.parse::<usize>().ok()?, n.parse::<u64>().ok()?)))
            {
                Some((r, n)) => Fault::StallWorker(r, n),
                None => bail!("LMTRAIN_FAULT: {item:?} needs a worker and a step, e.g. stall-worker:1@3"),
            },
            "fail-write-after" => match arg.parse::<u64>() {
                Ok(n) => Fault::FailWriteAfter(n),
                Err(_) => bail!("LMTRAIN_FAULT: {item:?} needs a whole number, e.g. fail-write-after:3"),
            },
            other => bail!(
                "LMTRAIN_FAULT: unknown fault {other:?}; known: pause-in-checkpoint-write:S, fail-write-after:N, pause-in-validation:S, pause-in-generation:S, pause-in-step:S, nan-loss-at:N, stall-worker:R@N"
            ),
        });
    }
    Ok(out)
}

static FAULTS: OnceLock<Vec<Fault>> = OnceLock::new();
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Reads `LMTRAIN_FAULT` once; a malformed value is an error (called by the CLI at start-up).
pub fn init() -> Result<()> {
    if FAULTS.get().is_some() {
        return Ok(());
    }
    let faults = match std::env::var("LMTRAIN_FAULT") {
        Ok(spec) => parse(&spec)?,
        Err(_) => Vec::new(),
    };
    if !faults.is_empty() {
        eprintln!("fault: injecting {faults:?} (LMTRAIN_FAULT)");
    }
    let _ = FAULTS.set(faults);
    Ok(())
}

fn faults() -> &'static [Fault] {
    FAULTS.get().map(Vec::as_slice).unwrap_or(&[])
}

static NAN_FIRED: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

/// Whether step `t`'s loss is to be made NaN (`nan-loss-at:N`): once per step number and
/// process, so a rollback that replays step N finds it finite.
pub fn nan_loss_now(t: u64) -> bool {
    let wanted = faults().contains(&Fault::NanLossAt(t));
    if !wanted {
        return false;
    }
    let mut fired = NAN_FIRED.lock().unwrap_or_else(|e| e.into_inner());
    if fired.contains(&t) {
        return false;
    }
    fired.push(t);
    eprintln!("fault: making the loss of step {t} NaN");
    true
}

/// `stall-worker:R@N`: data-parallel worker `rank` at step `t` sleeps for good (the process
/// ends around it: the step watchdog, or a kill).
pub fn stall_worker(rank: usize, t: u64) {
    if faults().contains(&Fault::StallWorker(rank, t)) {
        eprintln!("fault: stalling data-parallel worker {rank} at step {t}");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// Fires the pauses configured for `point`.
pub fn at(point: Point, what: &str) {
    for f in faults() {
        if let Fault::Pause(p, secs) = f {
            if *p == point {
                eprintln!("fault: pausing {secs} s in {what}");
                std::thread::sleep(Duration::from_secs_f64(*secs));
            }
        }
    }
}

/// Called by every atomic file write before it renames; for checkpoint files (and SAC replay
/// buffers) it fails as a full disk once the writes allowed by `fail-write-after` are used up,
/// and pauses.
pub fn before_rename(path: &std::path::Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !(name.starts_with("ckpt-") || name.starts_with("sac-") || name.starts_with("replay-")) {
        return Ok(());
    }
    let n = WRITES.fetch_add(1, Ordering::SeqCst);
    for f in faults() {
        if let Fault::FailWriteAfter(limit) = f {
            if n >= *limit {
                eprintln!(
                    "fault: failing checkpoint write {} ({})",
                    n + 1,
                    path.display()
                );
                bail!("No space left on device (os error 28) (injected by LMTRAIN_FAULT)");
            }
        }
    }
    at(
        Point::CheckpointWrite,
        &format!("the write of {}", path.display()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse("pause-in-step:0.5, fail-write-after:3").unwrap(),
            vec![Fault::Pause(Point::Step, 0.5), Fault::FailWriteAfter(3)]
        );
        assert_eq!(
            parse("stall-worker:1@3").unwrap(),
            vec![Fault::StallWorker(1, 3)]
        );
        assert!(parse("").unwrap().is_empty());
        for bad in [
            "pause-in-step",
            "pause-in-step:nan",
            "fail-write-after:x",
            "stall-worker:1",
            "stall-worker:a@3",
            "explode",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("LMTRAIN_FAULT"), "{e}");
        }
    }
}
