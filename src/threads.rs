//! Where the CPU backend's parallel work runs, for loops of many small ops (SAC's updates).
//!
//! burn's CPU backend (flex) hands matmuls of at least 192³ multiply-adds to gemm, which splits
//! them over rayon's pool. Called from the main thread, each such op wakes the pool's workers
//! and puts the caller to sleep until they finish; between two such ops the workers find nothing
//! to do and go to sleep again. On a virtual machine waking an idle vCPU costs tens to hundreds
//! of microseconds, and SAC's update has about twenty such matmuls: with `RAYON_NUM_THREADS=2`
//! its step was slower than with one thread (BENCHMARKS.md, "SAC step rate against PyTorch").
//! PyTorch's OpenMP threads avoid this by spinning between parallel regions.
//!
//! [`run_on_active_pool`] does the same for rayon: the loop runs on a pool worker (so the
//! calling thread is one of the `RAYON_NUM_THREADS` and works its share of each split op), and
//! every other worker runs a job that polls the pool for work until the loop returns, so a split
//! op is picked up at once. Like libgomp's, the polling is bounded: a worker that has found no
//! work for [`SPIN`] sleeps in short naps until work comes, so long pauses (checkpoints, a GPU
//! run) cost little. While the loop computes, a run with `RAYON_NUM_THREADS = T` keeps T cores
//! busy. With T = 1 nothing spins.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker polls without finding work before it naps: well above the gaps between an
/// update's matmuls (microseconds) and an environment step (~0.1 ms), well below a checkpoint.
pub const SPIN: Duration = Duration::from_millis(2);
/// One nap of an idle worker.
const NAP: Duration = Duration::from_micros(200);

/// One set of spinners at a time: two could each end up waiting inside the other's spinner.
static ACTIVE: Mutex<()> = Mutex::new(());

/// Runs `f` on a worker of rayon's global pool, with the pool's other workers polling for work
/// (spinning) until `f` returns, and returns `f`'s result. Runs `f` in place, without spinners,
/// when the current thread already is a pool worker or the pool has one thread. The calling
/// thread sleeps while `f` runs; a second caller waits for the first. A panic in `f` stops the
/// spinners and propagates.
pub fn run_on_active_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() || rayon::current_num_threads() < 2 {
        return f();
    }
    let _one = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = None;
    rayon::scope(|_| {
        let stop = Arc::new(AtomicBool::new(false));
        let here = rayon::current_thread_index();
        // A broadcast job goes to every worker's own queue, so none of the spinners can end up
        // queued behind `f` on this worker (this worker's copy returns at once).
        let flag = stop.clone();
        rayon::spawn_broadcast(move |ctx| {
            if Some(ctx.index()) == here {
                return;
            }
            let mut idle_since = None;
            while !flag.load(Ordering::Acquire) {
                if rayon::yield_now() == Some(rayon::Yield::Executed) {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() < SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(NAP);
                }
            }
        });
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _stop = StopOnDrop(stop);
        out = Some(f());
    });
    out.expect("rayon::scope runs its body before returning")
}

/// One line for a run's log: the pool's size and what [`run_on_active_pool`] does with it.
pub fn describe() -> String {
    match rayon::current_num_threads() {
        1 => "CPU threads: 1 (RAYON_NUM_THREADS)".to_string(),
        n => format!(
            "CPU threads: {n} (RAYON_NUM_THREADS; default one per core); on the CPU the {} other worker(s) spin while the run computes, so give each of several runs at once RAYON_NUM_THREADS=1",
            n - 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// From a thread outside the pool (as the CLI's main thread is): the body runs on a worker,
    /// its parallel work completes, the spinners stop after it (or after a panic), and the pool
    /// keeps working.
    #[test]
    fn runs_on_a_worker_and_stops_its_spinners() {
        assert!(rayon::current_thread_index().is_none());
        for _ in 0..20 {
            let (inside, v) = run_on_active_pool(|| {
                let v = (0..1000u32).into_par_iter().map(|x| x % 7).sum::<u32>();
                (rayon::current_thread_index(), v)
            });
            assert!(inside.is_some(), "the body must run on a pool worker");
            assert_eq!(v, (0..1000u32).map(|x| x % 7).sum::<u32>());
        }
        let r = std::panic::catch_unwind(|| run_on_active_pool(|| panic!("body fails")));
        assert!(r.is_err(), "the panic must reach the caller");
        assert_eq!(run_on_active_pool(|| 7), 7);
        // Work injected from outside after the loop ended is still done (no worker is stuck).
        assert_eq!((0..100u32).into_par_iter().sum::<u32>(), 4950);
    }
}
