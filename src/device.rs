//! Choosing the compute device: CUDA when asked for or present, burn's flex CPU backend otherwise.

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor};

/// The `device` config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl DeviceChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => bail!("device = {other:?} is not allowed: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\""),
            },
        }
    }
}

/// The device a run uses, with a human-readable description for the log.
#[derive(Clone, Debug)]
pub struct ChosenDevice {
    pub device: Device,
    pub description: String,
    pub is_gpu: bool,
}

/// Resolves the choice. "auto" takes CUDA device 0 when an NVIDIA driver is present and a test
/// kernel runs on it; otherwise the CPU, saying why.
pub fn choose_device(choice: DeviceChoice) -> Result<ChosenDevice> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu("cpu (burn flex), as configured".into())),
        DeviceChoice::Cuda(n) => match try_cuda(n) {
            Ok(d) => Ok(d),
            Err(why) => bail!(
                "device = \"cuda:{n}\" but CUDA is unusable here: {why}. Use device = \"auto\" or \"cpu\"."
            ),
        },
        DeviceChoice::Auto => match try_cuda(0) {
            Ok(d) => Ok(d),
            Err(why) => Ok(cpu(format!("cpu (burn flex), chosen by auto: {why}"))),
        },
    }
}

fn cpu(description: String) -> ChosenDevice {
    ChosenDevice {
        device: Device::flex(),
        description,
        is_gpu: false,
    }
}

#[cfg(feature = "cuda")]
fn try_cuda(index: usize) -> std::result::Result<ChosenDevice, String> {
    // Probing CUDA without a driver panics inside the runtime, so look for the driver first.
    if !std::path::Path::new("/dev/nvidiactl").exists() {
        return Err("no NVIDIA driver (/dev/nvidiactl is absent)".into());
    }
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(move || {
        let device = Device::cuda(index);
        let x = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let sum: f32 = x.sum().into_scalar();
        (device, sum)
    });
    std::panic::set_hook(previous_hook);
    match probe {
        Ok((device, 3.0)) => Ok(ChosenDevice {
            device,
            description: format!("cuda:{index} (burn cuda backend)"),
            is_gpu: true,
        }),
        Ok(_) => Err("the CUDA test kernel returned a wrong result".into()),
        Err(_) => Err(format!("the CUDA runtime failed to start on cuda:{index}")),
    }
}

#[cfg(not(feature = "cuda"))]
fn try_cuda(_index: usize) -> std::result::Result<ChosenDevice, String> {
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
        let err = DeviceChoice::parse("gpu").unwrap_err().to_string();
        assert!(err.contains("\"auto\""), "{err}");
        assert!(DeviceChoice::parse("cuda:x").is_err());
    }
}
