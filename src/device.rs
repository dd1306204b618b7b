//! Choosing the compute device: CUDA when asked for or present, burn's flex CPU backend otherwise.

use anyhow::{bail, Result};
#[cfg(any(feature = "cuda", feature = "wgpu"))]
use burn::tensor::Tensor;
use burn::tensor::{Device, FloatDType};
use serde::{Deserialize, Serialize};

/// The top-level `device` key as written: one device (`device = "cuda:0"`), or a list of them
/// for data-parallel training (`device = ["cuda:0", "cuda:1"]`, one worker per device; issue
/// 19). A list of one is the same as the string.
///
/// For tests, `device = ["cpu", "cpu", …]` (W entries, all "cpu") runs W simulated workers on
/// the one CPU device, their gradients averaged by the in-process stand-in
/// ([`crate::train::dp::InProcessAllReduce`]); any other list with a CPU entry is refused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum DeviceSetting {
    One(String),
    List(Vec<String>),
}

impl Default for DeviceSetting {
    fn default() -> Self {
        Self::One("auto".into())
    }
}

impl From<&str> for DeviceSetting {
    fn from(s: &str) -> Self {
        Self::One(s.into())
    }
}

/// A parsed [`DeviceSetting`]: the device of worker 0 (which also draws the data, validates,
/// evaluates and checkpoints) and the number of data-parallel workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevicePlan {
    /// One device, as before data-parallel training existed.
    Single(DeviceChoice),
    /// One worker per listed CUDA device (distinct indices, at least two).
    Cuda(Vec<usize>),
    /// For tests: W ≥ 2 simulated workers on the one CPU device.
    SimulatedCpu(usize),
}

impl DevicePlan {
    /// The number of data-parallel workers.
    pub fn workers(&self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Cuda(ids) => ids.len(),
            Self::SimulatedCpu(w) => *w,
        }
    }

    /// Worker 0's device choice.
    pub fn primary(&self) -> DeviceChoice {
        match self {
            Self::Single(c) => *c,
            Self::Cuda(ids) => DeviceChoice::Cuda(ids[0]),
            Self::SimulatedCpu(_) => DeviceChoice::Cpu,
        }
    }
}

impl DeviceSetting {
    /// Parses and checks the setting.
    ///
    /// # Errors
    /// An unknown device name, an empty list, a device listed twice, or a list of two or more
    /// that mixes in anything but CUDA devices (the all-"cpu" list of the test stand-in aside).
    pub fn plan(&self) -> Result<DevicePlan> {
        let list = match self {
            Self::One(s) => return Ok(DevicePlan::Single(DeviceChoice::parse(s)?)),
            Self::List(l) => l,
        };
        let choices = list
            .iter()
            .map(|s| DeviceChoice::parse(s))
            .collect::<Result<Vec<_>>>()?;
        match choices.as_slice() {
            [] => bail!("device = [] lists no device: give one (\"cuda:0\") or several ([\"cuda:0\", \"cuda:1\"])"),
            [one] => return Ok(DevicePlan::Single(*one)),
            _ => {}
        }
        if choices.iter().all(|c| *c == DeviceChoice::Cpu) {
            return Ok(DevicePlan::SimulatedCpu(choices.len()));
        }
        let mut ids = Vec::with_capacity(choices.len());
        for (s, c) in list.iter().zip(&choices) {
            match c {
                DeviceChoice::Cuda(n) if ids.contains(n) => bail!(
                    "device = {list:?} lists cuda:{n} twice: data-parallel workers need distinct devices"
                ),
                DeviceChoice::Cuda(n) => ids.push(*n),
                _ => bail!(
                    "device = {list:?}: a list of devices is for data-parallel training on CUDA devices (\"cuda:N\", distinct); {s:?} cannot be one of them"
                ),
            }
        }
        Ok(DevicePlan::Cuda(ids))
    }
}

/// The `device` config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
    /// cubecl through wgpu (WGSL): on a machine without a GPU, Mesa's lavapipe runs it, which
    /// checks the cubecl route before a GPU session. Not meant for training.
    Wgpu,
}

impl DeviceChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "wgpu" => Ok(Self::Wgpu),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => bail!("device = {other:?} is not allowed: use \"auto\", \"cpu\", \"cuda\", \"cuda:N\" or \"wgpu\""),
            },
        }
    }
}

/// The device a run uses, with a human-readable description for the log.
#[derive(Clone, Debug)]
pub struct ChosenDevice {
    pub device: Device,
    pub description: String,
    /// The backend's short name for result lines: "cuda", "wgpu" or "cpu".
    pub backend: &'static str,
    pub is_gpu: bool,
}

/// Resolves the choice. "auto" takes CUDA device 0 when an NVIDIA driver is present and a test
/// kernel runs on it; otherwise the CPU, saying why.
pub fn choose_device(choice: DeviceChoice) -> Result<ChosenDevice> {
    choose_device_as(choice, None)
}

/// The float dtypes `lmtrain bench --dtype` accepts.
pub fn parse_float_dtype(s: &str) -> Result<FloatDType> {
    match s {
        "f32" => Ok(FloatDType::F32),
        "flex32" => Ok(FloatDType::Flex32),
        "bf16" => Ok(FloatDType::BF16),
        "f16" => Ok(FloatDType::F16),
        other => bail!(
            "dtype {other:?} is not allowed: use \"f32\", \"flex32\" (f32 storage, f16 tensor-core matmuls), \"bf16\" or \"f16\""
        ),
    }
}

/// As [`choose_device`], with the device's default float dtype set to `dtype` (it must be set
/// before the first tensor exists, so before the CUDA probe).
pub fn choose_device_as(choice: DeviceChoice, dtype: Option<FloatDType>) -> Result<ChosenDevice> {
    if let (DeviceChoice::Cpu, Some(d)) = (choice, dtype) {
        if d != FloatDType::F32 {
            bail!("dtype {d:?} is only offered on the GPU; the CPU backend runs f32");
        }
    }
    match choice {
        DeviceChoice::Cpu => Ok(cpu("cpu (burn flex), as configured".into())),
        DeviceChoice::Cuda(n) => match try_cuda(n, dtype) {
            Ok(d) => Ok(d),
            Err(why) => bail!(
                "device = \"cuda:{n}\" but CUDA is unusable here: {why}. Use device = \"auto\" or \"cpu\"."
            ),
        },
        DeviceChoice::Wgpu => try_wgpu(),
        DeviceChoice::Auto => match try_cuda(0, dtype) {
            Ok(d) => Ok(d),
            Err(why) => Ok(cpu(format!("cpu (burn flex), chosen by auto: {why}"))),
        },
    }
}

fn cpu(description: String) -> ChosenDevice {
    ChosenDevice {
        device: Device::flex(),
        description,
        backend: "cpu",
        is_gpu: false,
    }
}

/// Why CUDA cannot be used here when there is no NVIDIA driver at all (`None` when a driver
/// is present, which does not yet mean a device works).
pub fn no_cuda_driver() -> Option<&'static str> {
    (!std::path::Path::new("/dev/nvidiactl").exists())
        .then_some("no NVIDIA driver (/dev/nvidiactl is absent)")
}

#[cfg(feature = "cuda")]
fn try_cuda(index: usize, dtype: Option<FloatDType>) -> std::result::Result<ChosenDevice, String> {
    // Probing CUDA without a driver panics inside the runtime, so look for the driver first.
    if let Some(why) = no_cuda_driver() {
        return Err(why.into());
    }
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(move || {
        let mut device = Device::cuda(index);
        let configured = match dtype {
            Some(d) => device.configure(d).map_err(|e| format!("{e:?}")),
            None => Ok(()),
        };
        let x = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let sum: f32 = x.sum().into_scalar();
        (device, sum, configured)
    });
    std::panic::set_hook(previous_hook);
    match probe {
        Ok((_, _, Err(e))) => Err(format!("cannot set the float dtype {dtype:?}: {e}")),
        Ok((device, 3.0, Ok(()))) => Ok(ChosenDevice {
            device,
            description: format!(
                "cuda:{index} (burn cuda backend{}{})",
                gpu_name(index)
                    .map(|n| format!(", {n}"))
                    .unwrap_or_default(),
                dtype
                    .map(|d| format!(", float dtype {d:?}"))
                    .unwrap_or_default()
            ),
            backend: "cuda",
            is_gpu: true,
        }),
        Ok(_) => Err("the CUDA test kernel returned a wrong result".into()),
        Err(_) => Err(format!("the CUDA runtime failed to start on cuda:{index}")),
    }
}

/// The card's name as nvidia-smi gives it, for the log (None if nvidia-smi is unavailable).
#[cfg(feature = "cuda")]
fn gpu_name(index: usize) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
            &format!("--id={index}"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (out.status.success() && !line.is_empty()).then_some(line)
}

/// cubecl's wgpu runtime on its default adapter, checked with the same test kernel as CUDA.
#[cfg(feature = "wgpu")]
fn try_wgpu() -> Result<ChosenDevice> {
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // Without a Vulkan driver wgpu panics while picking an adapter.
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        let x = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let sum: f32 = x.sum().into_scalar();
        (device, sum)
    });
    std::panic::set_hook(previous_hook);
    match probe {
        Ok((device, 3.0)) => Ok(ChosenDevice {
            device,
            description: "wgpu (burn wgpu backend, WGSL; for checking the cubecl route)".into(),
            backend: "wgpu",
            is_gpu: true,
        }),
        Ok((_, sum)) => bail!("the wgpu test kernel returned {sum} instead of 3"),
        Err(_) => bail!(
            "the wgpu runtime failed to start: no usable Vulkan adapter (without a GPU, run scripts/install_lavapipe.sh)"
        ),
    }
}

#[cfg(not(feature = "wgpu"))]
fn try_wgpu() -> Result<ChosenDevice> {
    bail!(
        "device = \"wgpu\" needs a build with `--features wgpu` (see scripts/check_cube_route.sh)"
    )
}

#[cfg(not(feature = "cuda"))]
fn try_cuda(
    _index: usize,
    _dtype: Option<FloatDType>,
) -> std::result::Result<ChosenDevice, String> {
    Err("this binary was built without the `cuda` feature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_choices() {
        assert_eq!(DeviceChoice::parse("auto").unwrap(), DeviceChoice::Auto);
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::parse("cuda").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(
            DeviceChoice::parse("cuda:3").unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert_eq!(parse_float_dtype("flex32").unwrap(), FloatDType::Flex32);
        assert_eq!(parse_float_dtype("bf16").unwrap(), FloatDType::BF16);
        let err = parse_float_dtype("fp8").unwrap_err().to_string();
        assert!(err.contains("\"flex32\""), "{err}");
        let err = choose_device_as(DeviceChoice::Cpu, Some(FloatDType::BF16))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only offered on the GPU"), "{err}");
        let err = DeviceChoice::parse("gpu").unwrap_err().to_string();
        assert!(err.contains("\"auto\""), "{err}");
        assert!(DeviceChoice::parse("cuda:x").is_err());
        assert_eq!(DeviceChoice::parse("wgpu").unwrap(), DeviceChoice::Wgpu);
        #[cfg(not(feature = "wgpu"))]
        {
            let err = choose_device(DeviceChoice::Wgpu).unwrap_err().to_string();
            assert!(err.contains("--features wgpu"), "{err}");
        }
    }

    #[test]
    fn parses_device_lists() {
        let list = |v: &[&str]| DeviceSetting::List(v.iter().map(|s| s.to_string()).collect());
        let one: DeviceSetting = "cuda:1".into();
        assert_eq!(
            one.plan().unwrap(),
            DevicePlan::Single(DeviceChoice::Cuda(1))
        );
        assert_eq!(
            list(&["cuda:1"]).plan().unwrap(),
            DevicePlan::Single(DeviceChoice::Cuda(1))
        );
        assert_eq!(
            list(&["cpu"]).plan().unwrap(),
            DevicePlan::Single(DeviceChoice::Cpu)
        );
        let two = list(&["cuda:0", "cuda:2"]).plan().unwrap();
        assert_eq!(two, DevicePlan::Cuda(vec![0, 2]));
        assert_eq!((two.workers(), two.primary()), (2, DeviceChoice::Cuda(0)));
        assert_eq!(
            list(&["cpu", "cpu", "cpu"]).plan().unwrap(),
            DevicePlan::SimulatedCpu(3)
        );
        for bad in [
            &["cuda:0", "cuda"][..],
            &["cuda:0", "cpu"],
            &["auto", "cuda:1"],
            &["wgpu", "wgpu"],
            &[],
        ] {
            assert!(list(bad).plan().is_err(), "{bad:?}");
        }
        let e = list(&["cuda:0", "cuda"]).plan().unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        // The TOML forms.
        #[derive(Deserialize)]
        struct C {
            device: DeviceSetting,
        }
        let c: C = toml::from_str("device = [\"cuda:0\", \"cuda:1\"]").unwrap();
        assert_eq!(c.device, list(&["cuda:0", "cuda:1"]));
        let c: C = toml::from_str("device = \"cpu\"").unwrap();
        assert_eq!(c.device, "cpu".into());
    }
}
