//! Parameters as a flat, named list of tensors.
//!
//! The trainer (AdamW, clipping, EMA, checkpoints) treats every model the same way: as the list
//! of its parameters in a fixed order, each stored flattened to 1-D and reshaped by the model's
//! forward. A reshape of a contiguous tensor is free, and the optimizer, EMA and checkpoint code
//! then need no knowledge of ranks or architectures.

use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor, TensorData};

/// One parameter: its name (Hugging Face GPT-2 names for the GPT), its logical shape, and
/// whether AdamW's weight decay applies to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub decay: bool,
}

impl ParamSpec {
    pub fn new(name: impl Into<String>, shape: &[usize]) -> Self {
        // nanoGPT's rule: every tensor of rank ≥ 2 (matmul weights and both embeddings) decays;
        // biases and layer-norm parameters do not.
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            decay: shape.len() >= 2,
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Host copies of parameter values, in spec order.
pub type HostParams = Vec<Vec<f32>>;

/// Uploads host values as flat 1-D tensors on `device`.
pub fn upload(specs: &[ParamSpec], values: &[Vec<f32>], device: &Device) -> Result<Vec<Tensor<1>>> {
    if specs.len() != values.len() {
        bail!(
            "expected {} parameter tensors, got {}",
            specs.len(),
            values.len()
        );
    }
    specs
        .iter()
        .zip(values)
        .map(|(spec, v)| {
            if v.len() != spec.numel() {
                bail!(
                    "parameter {} has {} values, expected {} for shape {:?}",
                    spec.name,
                    v.len(),
                    spec.numel(),
                    spec.shape
                );
            }
            Ok(Tensor::<1>::from_data(
                TensorData::new(v.clone(), [v.len()]),
                device,
            ))
        })
        .collect()
}

/// Downloads tensors to host vectors (one sync per tensor; used for checkpoints, not per step).
pub fn download(tensors: &[Tensor<1>]) -> Result<HostParams> {
    tensors
        .iter()
        .map(|t| {
            t.to_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read a parameter tensor: {e:?}"))
        })
        .collect()
}

/// Total number of scalars.
pub fn count(specs: &[ParamSpec]) -> usize {
    specs.iter().map(ParamSpec::numel).sum()
}

/// Deterministic N(0, std) samples from a ChaCha stream (Box–Muller), so initialization is the
/// same on every backend and machine.
pub fn normal_fill(rng: &mut impl rand::Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        out.push((r * theta.cos() * std) as f32);
        if out.len() < n {
            out.push((r * theta.sin() * std) as f32);
        }
    }
    out
}
