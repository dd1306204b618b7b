//! `lmtrain check-nccl`: the data-parallel collective on real CUDA devices, through the calls
//! training makes ([`crate::train::dp::nccl_lib::ensure_loadable`], then
//! [`NcclAllReduce`]'s `all_reduce(…, ReduceOperation::Mean, devices).resolve()`, one worker
//! thread per device), in three checks:
//!
//! 1. NCCL loads (found where it lives, see [`crate::train::dp::nccl_lib`]) and a communicator
//!    is set up over the listed devices: burn joins NCCL lazily at the first all-reduce, even
//!    for one device (`cubecl-runtime-0.11.3/src/client.rs`, `ensure_init_collective`; there
//!    is no one-device shortcut), so one H200 exercises the same path as eight, less the
//!    traffic.
//! 2. The mean is right: worker r's buffer holds x_r[i] = ((7i + 13r) mod 101) / 8, whose sums
//!    are exact in f32, and every worker's result is compared with the host's mean.
//! 3. A data-parallel optimizer step on the linear BC testbed (`data_parallel_step`, the
//!    trainer's: flatten, all-reduce, unflatten, clip, AdamW, EMA) against the single-device
//!    `optimizer_step`, 3 steps: with one device the mean over one rank is the identity, so the
//!    weights must agree bit for bit; with W devices each worker sees 1/W of the rows, so the
//!    losses agree within 1e-5 and the replicas are bitwise identical.
//!
//! Then it times the flatten copy around it (a `--mib` buffer in 148 pieces, config B's
//! parameter count, concatenated and cut back: `RESULT check-nccl-flatten …`) and the
//! all-reduce of a `--mib` buffer (mean of `--iters` calls after 2 warm-up calls, each waited
//! for) and prints `RESULT check-nccl …` with the algorithm bandwidth
//! (bytes / time) and, for W ≥ 2, NCCL's bus bandwidth (× 2(W−1)/W, NVIDIA/nccl-tests
//! `doc/PERFORMANCE.md`).

use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use burn::tensor::{Device, Tensor, TensorData};

use crate::device::{choose_device, DeviceChoice};
use crate::model::params::{download, upload};
use crate::train::dp::allreduce::NcclAllReduce;
use crate::train::dp::probe::{probe_config, probe_task};
use crate::train::dp::{data_parallel_step, AllReduce, Worker};
use crate::train::step::{optimizer_step, StepExtras, TrainState};
use crate::train::Task;

/// `lmtrain check-nccl`'s options.
pub struct CheckNcclOptions {
    /// CUDA device indices, one worker each (rank = position).
    pub devices: Vec<usize>,
    /// Size of the timed buffer, MiB of f32.
    pub mib: f64,
    /// Timed all-reduces.
    pub iters: usize,
}

fn buffer(rank: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((7 * i + 13 * rank) % 101) as f32 / 8.0)
        .collect()
}

/// Runs the checks; an error names the check that failed.
pub fn run(o: &CheckNcclOptions) -> Result<()> {
    if o.devices.is_empty() {
        bail!("check-nccl: --devices lists no device");
    }
    let line = crate::train::dp::nccl_lib::ensure_loadable().map_err(|e| {
        match crate::device::no_cuda_driver() {
            // Installing NCCL would not help on such a machine: say the bigger problem first.
            Some(why) => e.context(format!("CUDA is unusable here too: {why}")),
            None => e,
        }
    })?;
    println!("{line}");
    let mut devices = Vec::new();
    for &i in &o.devices {
        let c = choose_device(DeviceChoice::Cuda(i))?;
        println!("worker {}: {}", devices.len(), c.description);
        devices.push(c.device);
    }
    let world = devices.len();

    // 1 and 2: a communicator and a correct mean.
    let n = 1 << 20;
    let t0 = Instant::now();
    let results = on_workers(&devices, |comm, device| {
        let x = Tensor::<1>::from_data(TensorData::new(buffer(comm.rank(), n), [n]), device);
        let m = comm.all_reduce_mean(x)?;
        m.into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow!("cannot read the all-reduced buffer: {e:?}"))
    })?;
    let first_s = t0.elapsed().as_secs_f64();
    let mut max_err = 0f64;
    for i in 0..n {
        let want: f64 = (0..world)
            .map(|r| ((7 * i + 13 * r) % 101) as f64 / 8.0)
            .sum::<f64>()
            / world as f64;
        for got in &results {
            max_err = max_err.max((got[i] as f64 - want).abs() / want.abs().max(1.0));
        }
    }
    println!(
        "CHECK nccl-mean world={world} elements={n} max_rel_err={max_err:.3e} first_call_s={first_s:.2} (communicator set-up included) {}",
        if max_err <= 1e-6 { "ok" } else { "FAILED" }
    );
    if max_err > 1e-6 {
        bail!("check-nccl: the all-reduced mean is off by {max_err:.3e} (relative)");
    }

    // 3: the trainer's data-parallel step against the single-device step.
    check_step(&devices)?;

    // Timing.
    let n = ((o.mib * 1024.0 * 1024.0 / 4.0) as usize).max(1);
    let iters = o.iters.max(1);
    let secs = on_workers(&devices, |comm, device| {
        let x = Tensor::<1>::from_data(TensorData::new(buffer(comm.rank(), n), [n]), device);
        let mut x = x;
        let mut timed = 0.0;
        for k in 0..iters + 2 {
            comm.barrier()?;
            let t = Instant::now();
            x = comm.all_reduce_mean(x)?;
            // One element read back waits for the collective.
            let _: f32 = x.clone().slice(0..1).into_scalar();
            if k >= 2 {
                timed += t.elapsed().as_secs_f64();
            }
        }
        Ok(timed / iters as f64)
    })?;
    // The copy the data-parallel step adds around the all-reduce: the gradients flattened
    // into one buffer (and cut back), here 148 pieces as config B's parameter tensors.
    let flatten_s = on_workers(&devices[..1], |_, device| {
        let pieces = 148;
        let per = (n / pieces).max(1);
        let grads: Vec<Tensor<1>> = (0..pieces)
            .map(|k| Tensor::<1>::from_data(TensorData::new(buffer(k, per), [per]), device))
            .collect();
        let loss = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), device);
        let lens = vec![per; pieces];
        let mut timed = 0.0;
        for k in 0..iters + 2 {
            let t = Instant::now();
            let flat = crate::train::dp::step::flatten(grads.clone(), loss.clone());
            let (back, _) = crate::train::dp::step::unflatten(flat, &lens);
            // Reading one element of the last piece waits for the copy.
            let _: f32 = back[pieces - 1].clone().slice(0..1).into_scalar();
            if k >= 2 {
                timed += t.elapsed().as_secs_f64();
            }
        }
        Ok(timed / iters as f64)
    })?[0];
    println!(
        "RESULT check-nccl-flatten mib={:.1} pieces=148 ms_flatten_and_cut={:.3}",
        (4 * n) as f64 / 1048576.0,
        flatten_s * 1e3
    );
    let s = secs.iter().cloned().fold(0.0, f64::max);
    let bytes = 4.0 * n as f64;
    let algbw = bytes / s / 1e9;
    let busbw = algbw * 2.0 * (world as f64 - 1.0) / world as f64;
    println!(
        "RESULT check-nccl world={world} mib={:.1} iters={iters} ms_per_all_reduce={:.3} algbw_gbs={algbw:.1} busbw_gbs={}",
        bytes / 1048576.0,
        s * 1e3,
        if world > 1 {
            format!("{busbw:.1}")
        } else {
            "n/a".into()
        }
    );
    Ok(())
}

/// Runs `f` on one thread per device with that worker's collective handle; results in rank
/// order. A failing worker aborts the group so that the others return.
fn on_workers<T: Send>(
    devices: &[Device],
    f: impl Fn(&NcclAllReduce, &Device) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let comms = NcclAllReduce::group(devices);
    std::thread::scope(|s| {
        let handles: Vec<_> = comms
            .iter()
            .zip(devices)
            .map(|(c, d)| {
                let f = &f;
                s.spawn(move || {
                    let out = f(c, d);
                    if out.is_err() {
                        c.abort();
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a check-nccl worker panicked")))
            })
            .collect()
    })
}

fn check_step(devices: &[Device]) -> Result<()> {
    let world = devices.len();
    let cfg = probe_config(8 * world, 3)?;
    let mut plain_task = probe_task(&cfg)?;
    let mut dp_task = probe_task(&cfg)?;
    let specs = plain_task.specs().to_vec();
    let init = plain_task.init_params(cfg.train.seed);
    let mut plain = TrainState::fresh(upload(&specs, &init, &devices[0])?, true);
    let mut workers: Vec<Worker<NcclAllReduce>> = NcclAllReduce::group(devices)
        .into_iter()
        .zip(devices)
        .map(|(comm, d)| {
            Ok(Worker::new(
                d.clone(),
                TrainState::fresh(upload(&specs, &init, d)?, true),
                comm,
            ))
        })
        .collect::<Result<_>>()?;
    let mut worst = 0f64;
    for step in 1..=3 {
        let extras = StepExtras {
            grad_norm: true,
            mark: None,
        };
        let p = optimizer_step(
            &mut plain_task,
            &mut plain,
            &specs,
            &cfg,
            &devices[0],
            extras,
        )?;
        let outs = data_parallel_step(&mut dp_task, &mut workers, &specs, &cfg, true, None)?;
        let lp: f32 = p.loss.into_scalar();
        let ld: f32 = outs[0].loss.clone().into_scalar();
        let rel = ((lp - ld).abs() / lp.abs().max(1e-12)) as f64;
        worst = worst.max(rel);
        println!("CHECK nccl-step step={step} loss_single={lp:.9} loss_data_parallel={ld:.9} rel={rel:.2e}");
    }
    let host = |s: &TrainState| -> Result<Vec<Vec<Vec<f32>>>> {
        Ok(vec![
            download(&s.params)?,
            download(&s.opt.m)?,
            download(&s.opt.v)?,
            download(s.ema.as_deref().unwrap_or(&[]))?,
        ])
    };
    let single = host(&plain)?;
    let r0 = host(&workers[0].state)?;
    let replicas_identical = workers[1..]
        .iter()
        .map(|w| host(&w.state))
        .collect::<Result<Vec<_>>>()?
        .iter()
        .all(|r| *r == r0);
    let bitwise = r0 == single;
    let ok = replicas_identical && if world == 1 { bitwise } else { worst <= 1e-5 };
    println!(
        "CHECK nccl-step world={world} max_rel_loss={worst:.2e} replicas_identical={replicas_identical} bitwise_equal_to_single_device={bitwise} {}",
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        bail!("check-nccl: the data-parallel step over NCCL does not reproduce the single-device step (see the CHECK nccl-step lines)");
    }
    Ok(())
}
