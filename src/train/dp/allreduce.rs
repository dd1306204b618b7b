//! The collective a data-parallel step needs, behind a trait: the mean of one flat f32 buffer
//! across the workers, and a barrier.
//!
//! - [`InProcessAllReduce`]: the stand-in for CPU tests (burn 0.22.1 has no collective on any
//!   CPU backend). Worker threads of one process meet at a barrier; every worker sums the
//!   buffers in rank order and divides by the worker count, so the result is the same bits on
//!   every worker and from run to run.
//! - `NcclAllReduce` (feature `cuda`): production, burn's all-reduce (`ReduceOperation::Mean`,
//!   NCCL's `ncclAvg`) over the CUDA devices of the workers, one call per step on the flat
//!   buffer. Source: `burn-tensor-0.22.1/src/tensor/distributed.rs` (`all_reduce`,
//!   `CollectiveTensor::resolve`), `burn-std-0.22.1/src/distributed.rs` (`ReduceOperation`).

use std::sync::{Arc, Condvar, Mutex};

use anyhow::{anyhow, bail, Result};
use burn::tensor::{Tensor, TensorData};

/// A group of `world()` workers, each holding one of these with its own `rank()`.
///
/// Every worker must make the same calls in the same order (the collective pairs calls up by
/// their order; NCCL hangs on a mismatch).
pub trait AllReduce: Send {
    /// This worker's index in `0..world()`.
    fn rank(&self) -> usize;

    /// The number of workers.
    fn world(&self) -> usize;

    /// The element-wise mean over the workers of `buf`, a flat f32 buffer of the same length
    /// `[n]` on every worker, returned on `buf`'s device (shape `[n]`). Every worker gets the
    /// same values.
    ///
    /// # Errors
    /// When the workers' lengths differ, a buffer cannot be read (not f32), or another worker
    /// failed ([`AllReduce::abort`]).
    fn all_reduce_mean(&self, buf: Tensor<1>) -> Result<Tensor<1>>;

    /// Returns once every worker has called it.
    ///
    /// # Errors
    /// When another worker failed ([`AllReduce::abort`]).
    fn barrier(&self) -> Result<()>;

    /// Tells the group this worker failed, so that the others' waits return an error instead
    /// of waiting for ever.
    fn abort(&self);
}

/// A boxed collective, so that the trainer holds one type whatever the transport.
impl AllReduce for Box<dyn AllReduce> {
    fn rank(&self) -> usize {
        (**self).rank()
    }

    fn world(&self) -> usize {
        (**self).world()
    }

    fn all_reduce_mean(&self, buf: Tensor<1>) -> Result<Tensor<1>> {
        (**self).all_reduce_mean(buf)
    }

    fn barrier(&self) -> Result<()> {
        (**self).barrier()
    }

    fn abort(&self) {
        (**self).abort()
    }
}

/// A barrier for the threads of one process that a failing thread can break: `wait` then
/// returns an error on every thread instead of hanging.
#[derive(Debug)]
pub struct HostBarrier {
    world: usize,
    state: Mutex<BarrierState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct BarrierState {
    arrived: usize,
    generation: u64,
    aborted: bool,
}

impl HostBarrier {
    /// A barrier for `world` ≥ 1 threads.
    pub fn new(world: usize) -> Self {
        assert!(world >= 1, "a barrier needs at least one thread");
        Self {
            world,
            state: Mutex::new(BarrierState::default()),
            cv: Condvar::new(),
        }
    }

    /// Blocks until `world` threads have called `wait` (since the last release).
    ///
    /// # Errors
    /// When [`HostBarrier::abort`] was called, before or during the wait.
    pub fn wait(&self) -> Result<()> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?;
        if s.aborted {
            bail!("another data-parallel worker failed");
        }
        s.arrived += 1;
        if s.arrived == self.world {
            s.arrived = 0;
            s.generation += 1;
            self.cv.notify_all();
            return Ok(());
        }
        let generation = s.generation;
        while s.generation == generation && !s.aborted {
            s = self.cv.wait(s).map_err(|_| anyhow!("a worker panicked"))?;
        }
        if s.generation == generation {
            bail!("another data-parallel worker failed");
        }
        Ok(())
    }

    /// Breaks the barrier for good: present and future waits return an error.
    pub fn abort(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.aborted = true;
        }
        self.cv.notify_all();
    }
}

/// What the in-process workers share: one host buffer per rank and the barrier.
#[derive(Debug)]
struct Shared {
    slots: Mutex<Vec<Vec<f32>>>,
    barrier: HostBarrier,
}

/// The in-process stand-in: one per worker thread, made together by
/// [`InProcessAllReduce::group`]. The mean goes through the host (device → host, sum, host →
/// device), which is what a test on the CPU backend needs and nothing more.
#[derive(Debug, Clone)]
pub struct InProcessAllReduce {
    rank: usize,
    world: usize,
    shared: Arc<Shared>,
}

impl InProcessAllReduce {
    /// `world` ≥ 1 handles, rank 0 first.
    pub fn group(world: usize) -> Vec<Self> {
        let shared = Arc::new(Shared {
            slots: Mutex::new(vec![Vec::new(); world]),
            barrier: HostBarrier::new(world),
        });
        (0..world)
            .map(|rank| Self {
                rank,
                world,
                shared: shared.clone(),
            })
            .collect()
    }
}

impl AllReduce for InProcessAllReduce {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    /// Σ_{r = 0, 1, …, W−1} buf_r (f32, added in rank order) / W, computed by every worker.
    fn all_reduce_mean(&self, buf: Tensor<1>) -> Result<Tensor<1>> {
        let device = buf.device();
        let mine = buf
            .try_into_data()
            .map_err(|e| anyhow!("cannot read the buffer to all-reduce: {e:?}"))?
            .try_into_vec::<f32>()
            .map_err(|e| anyhow!("the buffer to all-reduce is not f32: {e:?}"))?;
        self.shared
            .slots
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?[self.rank] = mine;
        self.shared.barrier.wait()?;
        let mean = {
            let slots = self
                .shared
                .slots
                .lock()
                .map_err(|_| anyhow!("a worker panicked"))?;
            let n = slots[0].len();
            if let Some((r, s)) = slots.iter().enumerate().find(|(_, s)| s.len() != n) {
                bail!(
                    "all-reduce: worker {r} sent {} values, worker 0 sent {n}",
                    s.len()
                );
            }
            let mut sum = slots[0].clone();
            for s in &slots[1..] {
                for (a, b) in sum.iter_mut().zip(s) {
                    *a += *b;
                }
            }
            let w = self.world as f32;
            sum.iter_mut().for_each(|a| *a /= w);
            sum
        };
        // Nobody overwrites a slot before every worker has read them all.
        self.shared.barrier.wait()?;
        let n = mean.len();
        Ok(Tensor::from_data(TensorData::new(mean, [n]), &device))
    }

    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait()
    }

    fn abort(&self) {
        self.shared.barrier.abort();
    }
}

#[cfg(feature = "cuda")]
pub use nccl::NcclAllReduce;

#[cfg(feature = "cuda")]
mod nccl {
    use std::sync::Arc;

    use anyhow::Result;
    use burn::tensor::distributed::{all_reduce, ReduceOperation};
    use burn::tensor::{Device, Tensor};

    use super::{AllReduce, HostBarrier};

    /// Production: burn's NCCL all-reduce over the workers' CUDA devices (one worker thread
    /// per device, one process). Compiled in the default build; not yet used by the trainer
    /// and not yet run on a GPU (issue 19).
    ///
    /// `all_reduce_mean` is `all_reduce(buf, ReduceOperation::Mean, devices).resolve()`
    /// (`burn-tensor-0.22.1/src/tensor/distributed.rs`): an NCCL `ncclAvg` in place when the
    /// buffer's handle is exclusive, on the device, without a host copy; `resolve` makes the
    /// compute stream wait for NCCL's, it does not block the host. NCCL's rank is the
    /// position of the device in the sorted device list (cubecl-server-0.11.3
    /// `command/collective.rs`), which for a mean does not matter. NCCL must be loadable
    /// (`libnccl.so` on the library path, see the notes): without it burn panics at the first
    /// call ("no transport between its devices"), so the trainer is to check it at start.
    /// The barrier is a host barrier of the worker threads.
    #[derive(Debug, Clone)]
    pub struct NcclAllReduce {
        rank: usize,
        devices: Vec<Device>,
        barrier: Arc<HostBarrier>,
    }

    impl NcclAllReduce {
        /// One handle per device of `devices` (rank = index in the list), all passing the same
        /// list to every collective, as NCCL requires.
        pub fn group(devices: &[Device]) -> Vec<Self> {
            let barrier = Arc::new(HostBarrier::new(devices.len()));
            (0..devices.len())
                .map(|rank| Self {
                    rank,
                    devices: devices.to_vec(),
                    barrier: barrier.clone(),
                })
                .collect()
        }
    }

    impl AllReduce for NcclAllReduce {
        fn rank(&self) -> usize {
            self.rank
        }

        fn world(&self) -> usize {
            self.devices.len()
        }

        fn all_reduce_mean(&self, buf: Tensor<1>) -> Result<Tensor<1>> {
            Ok(all_reduce(buf, ReduceOperation::Mean, self.devices.clone()).resolve())
        }

        fn barrier(&self) -> Result<()> {
            self.barrier.wait()
        }

        fn abort(&self) {
            self.barrier.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Two threads: both get (a + b) / 2, bit for bit the same; a second call reuses the slots.
    #[test]
    fn the_stand_in_averages_in_rank_order() {
        let group = InProcessAllReduce::group(2);
        let inputs = [[1.0f32, 2.0, 0.1], [3.0, -2.0, 0.2]];
        let out: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .zip(inputs)
                .map(|(c, x)| {
                    s.spawn(move || {
                        let d = Device::flex();
                        let mut v = Vec::new();
                        for k in 1..=2 {
                            let t = Tensor::<1>::from_floats(x, &d) * k as f64;
                            let m = c.all_reduce_mean(t).unwrap();
                            v = m.into_data().try_into_vec::<f32>().unwrap();
                        }
                        c.barrier().unwrap();
                        v
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let expected: Vec<f32> = (0..3)
            .map(|i| (2.0 * inputs[0][i] + 2.0 * inputs[1][i]) / 2.0)
            .collect();
        assert_eq!(out[0], expected);
        assert_eq!(out[1], expected);
    }

    /// A worker that fails releases the others with an error instead of a hang.
    #[test]
    fn an_abort_breaks_the_barrier() {
        let group = InProcessAllReduce::group(2);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| group[0].barrier());
            group[1].abort();
            assert!(waiter.join().unwrap().is_err());
        });
    }
}
