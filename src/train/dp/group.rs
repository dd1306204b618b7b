//! The data-parallel group a run's `device` list asks for: the workers' devices and their
//! handles on the collective.

use anyhow::Result;
use burn::tensor::Device;

use super::allreduce::{AllReduce, InProcessAllReduce};
use crate::device::DevicePlan;

/// W ≥ 2 workers: `devices[r]` and `comms[r]` are worker r's (rank order; worker 0's device is
/// the run's device, where the producer draws the data and worker 0 validates, evaluates and
/// checkpoints).
pub struct DataParallel {
    pub devices: Vec<Device>,
    pub comms: Vec<Box<dyn AllReduce>>,
    /// `names[r]`: worker r's device as the config names it ("cuda:1"), for messages.
    pub names: Vec<String>,
    /// For train.log.
    pub description: String,
}

/// Checks, before anything is written, that the plan's workers can run: that `batch_size`
/// splits evenly over them and, for several CUDA devices, that an NVIDIA driver is there and
/// NCCL loads (which may start the process again, see [`super::nccl_lib`]).
///
/// # Errors
/// An uneven split, no NVIDIA driver, NCCL missing or broken, or CUDA devices in a build
/// without `cuda`.
pub fn preflight(plan: &DevicePlan, batch_size: usize) -> Result<()> {
    let workers = plan.workers();
    if workers > 1 && !batch_size.is_multiple_of(workers) {
        anyhow::bail!(
            "train.batch_size = {batch_size} does not split evenly over the {workers} workers of the device list: make train.batch_size a multiple of {workers} (each micro-batch's rows are divided among the workers), or list another number of devices"
        );
    }
    match plan {
        DevicePlan::Cuda(_) => {
            if let Some(why) = crate::device::no_cuda_driver() {
                anyhow::bail!(
                    "device lists CUDA devices, but CUDA is unusable here: {why}. Use device = \"cpu\" (or [\"cpu\", \"cpu\"] to simulate data-parallel workers on the CPU)"
                );
            }
            nccl_ready().map(|_| ())
        }
        _ => Ok(()),
    }
}

#[cfg(feature = "cuda")]
fn nccl_ready() -> Result<String> {
    super::nccl_lib::ensure_loadable()
}

#[cfg(not(feature = "cuda"))]
fn nccl_ready() -> Result<String> {
    anyhow::bail!("a list of CUDA devices needs a build with the `cuda` feature")
}

impl DataParallel {
    /// The group for `plan`, worker 0 on `primary` (the device the run chose for the plan's
    /// primary choice); `None` for a single device.
    ///
    /// # Errors
    /// A listed CUDA device that cannot be used, or CUDA devices in a build without `cuda`.
    pub fn for_plan(plan: &DevicePlan, primary: &Device) -> Result<Option<Self>> {
        match plan {
            DevicePlan::Single(_) => Ok(None),
            DevicePlan::SimulatedCpu(w) => Ok(Some(Self {
                devices: vec![primary.clone(); *w],
                comms: InProcessAllReduce::group(*w)
                    .into_iter()
                    .map(|c| Box::new(c) as Box<dyn AllReduce>)
                    .collect(),
                names: vec!["cpu".into(); *w],
                description: format!(
                    "data-parallel: {w} simulated workers on the CPU (device = [\"cpu\", …], the in-process all-reduce stand-in, for tests)"
                ),
            })),
            DevicePlan::Cuda(ids) => cuda(ids, primary),
        }
    }

    /// The number of workers.
    pub fn world(&self) -> usize {
        self.devices.len()
    }
}

#[cfg(feature = "cuda")]
fn cuda(ids: &[usize], primary: &Device) -> Result<Option<DataParallel>> {
    use crate::device::{choose_device, DeviceChoice};
    let nccl = nccl_ready()?;
    let mut devices = vec![primary.clone()];
    for &id in &ids[1..] {
        devices.push(choose_device(DeviceChoice::Cuda(id))?.device);
    }
    Ok(Some(DataParallel {
        comms: super::allreduce::NcclAllReduce::group(&devices)
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn AllReduce>)
            .collect(),
        devices,
        names: ids.iter().map(|i| format!("cuda:{i}")).collect(),
        description: format!(
            "data-parallel: {} workers on cuda:{} (burn's NCCL all-reduce; {nccl})",
            ids.len(),
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", cuda:")
        ),
    }))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ids: &[usize], _primary: &Device) -> Result<Option<DataParallel>> {
    anyhow::bail!("a list of CUDA devices needs a build with the `cuda` feature")
}
