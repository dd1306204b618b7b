//! The MLP's activation. lmtrain trains with exact (erf) GELU; Hugging Face GPT-2 checkpoints
//! (GPT-2 124M and its family) use the tanh approximation, which imported models must keep to
//! reproduce their logits.

use anyhow::{bail, Result};
use burn::tensor::activation::gelu;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which GELU the MLP applies. Config values and Hugging Face `activation_function` names agree:
/// `"gelu"` is exact, `"gelu_new"` the tanh approximation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// x·Φ(x) with the exact erf; what every model lmtrain trains from scratch uses.
    #[default]
    #[serde(rename = "gelu")]
    Exact,
    /// ½x(1 + tanh(√(2/π)(x + 0.044715x³))): Hugging Face's `gelu_new`, GPT-2's original.
    #[serde(rename = "gelu_new")]
    Tanh,
}

/// √(2/π).
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

impl Activation {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Exact => gelu(x),
            Activation::Tanh => {
                // Written out rather than burn's gelu_approximate, which cubes through
                // powf_scalar: a float power of a negative base is not defined on every backend,
                // while x·x·x always is, and it is what `torch.pow(x, 3.0)` computes.
                let cube = x.clone() * x.clone() * x.clone();
                let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
                x * (inner.tanh() + 1.0) * 0.5
            }
        }
    }

    /// The Hugging Face `activation_function` value.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::Exact => "gelu",
            Activation::Tanh => "gelu_new",
        }
    }

    /// Parses a Hugging Face `activation_function`. `gelu_pytorch_tanh` is the same function as
    /// `gelu_new` computed by a fused kernel.
    pub fn from_hf_name(name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Activation::Exact),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::Tanh),
            other => bail!(
                "activation_function {other:?} is not supported: lmtrain implements \"gelu\" (exact erf) and \"gelu_new\" / \"gelu_pytorch_tanh\" (tanh approximation)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn eval(a: Activation, xs: &[f32]) -> Vec<f32> {
        let t = Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [xs.len()]), &Device::flex());
        a.apply(t).into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn tanh_gelu_matches_its_formula_for_negative_and_positive_inputs() {
        let xs = [-3.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0];
        let got = eval(Activation::Tanh, &xs);
        for (x, g) in xs.iter().zip(got) {
            let x = *x as f64;
            let want = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh());
            assert!((g as f64 - want).abs() < 1e-6, "x={x}: {g} vs {want}");
        }
    }

    #[test]
    fn the_two_gelus_differ_measurably() {
        // By about 4e-4 around x = −3 (2e-4 near ±1.5), which is why an imported model must keep
        // its own activation.
        let exact = eval(Activation::Exact, &[-3.0]);
        let tanh = eval(Activation::Tanh, &[-3.0]);
        assert!((exact[0] - tanh[0]).abs() > 3e-4, "{exact:?} {tanh:?}");
    }

    #[test]
    fn hf_names_round_trip_and_unknown_ones_are_refused() {
        for a in [Activation::Exact, Activation::Tanh] {
            assert_eq!(Activation::from_hf_name(a.hf_name()).unwrap(), a);
        }
        assert_eq!(
            Activation::from_hf_name("gelu_pytorch_tanh").unwrap(),
            Activation::Tanh
        );
        let err = Activation::from_hf_name("relu").unwrap_err().to_string();
        assert!(err.contains("relu") && err.contains("gelu_new"), "{err}");
    }
}
