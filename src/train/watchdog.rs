//! The step watchdog (`train.step_timeout_s`): a run whose optimizer step does not finish in
//! time stops with an error that says which data-parallel worker is late, instead of hanging
//! for ever.
//!
//! Why: a collective has no timeout of its own. When one worker of a data-parallel group dies
//! or stalls (a hung kernel, a lost GPU, a deadlock in the driver), the others wait for it in
//! the all-reduce, NCCL's or the in-process barrier, and the process hangs with no message
//! (`../shared/notes/distributed-training.md` §1.6: "a dead rank leaves the others blocked in
//! NCCL/backward with no timeout → the trainer needs its own watchdog"). A thread blocked in
//! NCCL cannot be cancelled, so the watchdog reports and ends the process: the run's newest
//! checkpoint (written atomically, before the stalled step) is where `lmtrain train --resume`
//! continues.
//!
//! The trainer arms the watchdog for each optimizer step, from its start until the step's
//! device work is known to be done (the next read of its loss, or before a validation,
//! evaluation or checkpoint, which are not timed), and disarms it there. Each data-parallel
//! worker marks its [`Phase`] in a [`StepProgress`], which the watchdog's message reads.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The exit status of a run stopped by the watchdog (1 is every other error).
pub const EXIT_STEP_TIMEOUT: i32 = 3;

/// What a data-parallel worker is doing within a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Not started on this step yet.
    Waiting = 0,
    /// Forward and backward passes on its shards.
    Gradients = 1,
    /// In the all-reduce, waiting for the other workers' gradients.
    AllReduce = 2,
    /// Clipping, AdamW and the EMA on the averaged gradients.
    Update = 3,
    /// Its part of the step is done (its device work may still be queued).
    Done = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Gradients,
            2 => Self::AllReduce,
            3 => Self::Update,
            4 => Self::Done,
            _ => Self::Waiting,
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Self::Waiting => "not started on the step",
            Self::Gradients => "still computing gradients",
            Self::AllReduce => "waiting in the all-reduce",
            Self::Update => "still applying the update",
            Self::Done => "finished its part",
        }
    }
}

/// The phase of every worker of a data-parallel group (rank order), shared by the workers'
/// threads and the watchdog.
#[derive(Debug)]
pub struct StepProgress {
    phases: Vec<AtomicU8>,
    names: Vec<String>,
}

impl StepProgress {
    /// One entry per worker; `names[r]` is worker r's device, for the message.
    pub fn new(names: Vec<String>) -> Self {
        Self {
            phases: names.iter().map(|_| AtomicU8::new(0)).collect(),
            names,
        }
    }

    /// Worker `rank` entered `phase` (a rank out of range is ignored).
    pub fn set(&self, rank: usize, phase: Phase) {
        if let Some(p) = self.phases.get(rank) {
            p.store(phase as u8, Ordering::SeqCst);
        }
    }

    /// Every worker back to [`Phase::Waiting`], at the start of a step.
    pub fn reset(&self) {
        for p in &self.phases {
            p.store(Phase::Waiting as u8, Ordering::SeqCst);
        }
    }

    /// Worker `rank`'s phase.
    pub fn get(&self, rank: usize) -> Phase {
        self.phases
            .get(rank)
            .map_or(Phase::Waiting, |p| Phase::from_u8(p.load(Ordering::SeqCst)))
    }

    /// Which workers hold the step up, e.g. "worker 1 (cuda:1): still computing gradients;
    /// worker 0 (cuda:0): waiting in the all-reduce".
    pub fn describe(&self) -> String {
        let phases: Vec<Phase> = (0..self.phases.len()).map(|r| self.get(r)).collect();
        if phases.iter().all(|p| *p == Phase::Done) {
            return "every worker finished its part on the host; the device work queued for the step (the all-reduce or the update) has not completed".into();
        }
        // The late ones first: a worker that is not in the all-reduce is what the others wait for.
        let mut order: Vec<usize> = (0..phases.len()).collect();
        order.sort_by_key(|&r| (phases[r] == Phase::AllReduce, r));
        let mut parts: Vec<String> = Vec::new();
        for phase in [
            Phase::Waiting,
            Phase::Gradients,
            Phase::Update,
            Phase::Done,
            Phase::AllReduce,
        ] {
            let ranks: Vec<String> = order
                .iter()
                .filter(|&&r| phases[r] == phase)
                .map(|&r| format!("{r} ({})", self.names[r]))
                .collect();
            if ranks.is_empty() {
                continue;
            }
            let who = if ranks.len() == 1 {
                format!("worker {}", ranks[0])
            } else {
                format!("workers {}", ranks.join(", "))
            };
            parts.push(format!("{who}: {}", phase.doing()));
        }
        parts.join("; ")
    }
}

/// What the watchdog does when a step overruns, given its message. The trainer's logs it and
/// ends the process with [`EXIT_STEP_TIMEOUT`]; tests pass one that records the message.
pub type OnTimeout = Box<dyn FnOnce(String) + Send>;

#[derive(Debug)]
struct Armed {
    step: u64,
    since: Instant,
    limit: Duration,
}

#[derive(Debug, Default)]
struct State {
    armed: Option<Armed>,
    shutdown: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// A thread that watches the armed step's deadline. Dropping it stops the thread.
pub struct Watchdog {
    shared: Arc<Shared>,
    limit: Duration,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog thread for steps of at most `limit` (`train.step_timeout_s`; a
    /// run's first step gets ten times as long, for kernel compilation and autotuning).
    /// `progress`: the data-parallel workers' phases (`None` on one device); `on_timeout` fires
    /// at most once, from the watchdog's thread, with the message.
    pub fn start(
        progress: Option<Arc<StepProgress>>,
        limit: Duration,
        on_timeout: OnTimeout,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let what = format!(
            "train.step_timeout_s = {}, ten times that for a run's first step",
            seconds(limit.as_secs_f64())
        );
        let thread = std::thread::Builder::new()
            .name("step-watchdog".into())
            .spawn(move || watch(&s, progress.as_deref(), &what, on_timeout))?;
        Ok(Self {
            shared,
            limit,
            thread: Some(thread),
        })
    }

    /// Optimizer step `step` must be done within the limit from now (ten times it when `first`,
    /// the run's first step); replaces an armed step.
    pub fn arm(&self, step: u64, first: bool) {
        let limit = if first { 10 * self.limit } else { self.limit };
        if let Ok(mut st) = self.shared.state.lock() {
            st.armed = Some(Armed {
                step,
                since: Instant::now(),
                limit,
            });
        }
        self.shared.cv.notify_all();
    }

    /// The armed step is done.
    pub fn disarm(&self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.armed = None;
        }
        self.shared.cv.notify_all();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.shutdown = true;
        }
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Seconds as a person reads them: to the hundredth below 10 s, whole above.
pub fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{:.2}", s)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{s:.0}")
    }
}

fn watch(shared: &Shared, progress: Option<&StepProgress>, what: &str, on_timeout: OnTimeout) {
    let Ok(mut st) = shared.state.lock() else {
        return;
    };
    loop {
        if st.shutdown {
            return;
        }
        let wait = match &st.armed {
            None => None,
            Some(a) => {
                let elapsed = a.since.elapsed();
                if elapsed >= a.limit {
                    let late = match progress {
                        Some(p) => p.describe(),
                        None => {
                            "the step's device work has not completed (a hung kernel or device?)"
                                .into()
                        }
                    };
                    let msg = format!(
                        "step {} has not finished after {} s (its limit: {} s; {what}): {late}",
                        a.step,
                        seconds(elapsed.as_secs_f64()),
                        seconds(a.limit.as_secs_f64())
                    );
                    drop(st);
                    on_timeout(msg);
                    return;
                }
                Some(a.limit - elapsed)
            }
        };
        st = match wait {
            None => match shared.cv.wait(st) {
                Ok(s) => s,
                Err(_) => return,
            },
            Some(d) => match shared.cv.wait_timeout(st, d) {
                Ok((s, _)) => s,
                Err(_) => return,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn dog(
        progress: Option<Arc<StepProgress>>,
        limit: Duration,
    ) -> (Watchdog, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        let w = Watchdog::start(
            progress,
            limit,
            Box::new(move |m| {
                let _ = tx.send(m);
            }),
        )
        .unwrap();
        (w, rx)
    }

    /// An overrun step fires once, naming the step and the worker that holds the others up.
    #[test]
    fn an_overrun_names_the_late_worker() {
        let p = Arc::new(StepProgress::new(vec!["cuda:0".into(), "cuda:1".into()]));
        let (w, rx) = dog(Some(p.clone()), Duration::from_millis(50));
        p.set(0, Phase::AllReduce);
        p.set(1, Phase::Gradients);
        w.arm(7, false);
        let m = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(m.starts_with("step 7 has not finished"), "{m}");
        assert!(
            m.contains(
                "worker 1 (cuda:1): still computing gradients; worker 0 (cuda:0): waiting in the all-reduce"
            ),
            "{m}"
        );
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }

    /// Steps disarmed in time never fire, however many there are.
    #[test]
    fn steps_done_in_time_do_not_fire() {
        let (w, rx) = dog(None, Duration::from_millis(1000));
        for t in 1..=20 {
            w.arm(t, false);
            std::thread::sleep(Duration::from_millis(2));
            w.disarm();
        }
        std::thread::sleep(Duration::from_millis(1100));
        assert!(rx.try_recv().is_err());
        drop(w);
    }

    /// Re-arming restarts the clock: only the step that overruns its own limit fires.
    #[test]
    fn arming_restarts_the_clock() {
        let (w, rx) = dog(None, Duration::from_millis(500));
        w.arm(1, false);
        std::thread::sleep(Duration::from_millis(100));
        w.arm(2, false);
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "fired although no step overran");
        let m = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(m.starts_with("step 2 "), "{m}");
        assert!(m.contains("hung kernel"), "{m}");
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(seconds(0.3), "0.3");
        assert_eq!(seconds(0.05), "0.05");
        assert_eq!(seconds(2.5), "2.5");
        assert_eq!(seconds(1800.0), "1800");
        assert_eq!(seconds(3.0), "3");
    }

    #[test]
    fn all_done_points_at_the_device_queue() {
        let p = StepProgress::new(vec!["cpu".into(); 3]);
        for r in 0..3 {
            p.set(r, Phase::Done);
        }
        assert!(p.describe().contains("device work"), "{}", p.describe());
        p.reset();
        p.set(2, Phase::AllReduce);
        assert_eq!(
            p.describe(),
            "workers 0 (cpu), 1 (cpu): not started on the step; worker 2 (cpu): waiting in the all-reduce"
        );
    }
}
