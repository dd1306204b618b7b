//! Choosing the compute device: CUDA when asked for or present, burn's flex CPU backend otherwise.

use anyhow::{bail, Result};
use burn::tensor::{Device, FloatDType, Tensor};

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

#[cfg(feature = "cuda")]
fn try_cuda(index: usize, dtype: Option<FloatDType>) -> std::result::Result<ChosenDevice, String> {
    // Probing CUDA without a driver panics inside the runtime, so look for the driver first.
    if !std::path::Path::new("/dev/nvidiactl").exists() {
        return Err("no NVIDIA driver (/dev/nvidiactl is absent)".into());
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
}
