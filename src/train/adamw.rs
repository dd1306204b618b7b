//! AdamW with decoupled weight decay, written out so that its state is plain tensors the
//! checkpoint can save in f32, and so that decay applies only to parameters whose spec says so.
//! The arithmetic follows `torch.optim.AdamW` (foreach=False) step for step. `optim.kind =
//! "sgd"` takes plain SGD steps instead and leaves the moments at zero.

use burn::tensor::Tensor;

use crate::config::{OptimConfig, OptimKind};
use crate::model::ParamSpec;

/// First and second moments, one pair per parameter.
pub struct AdamW {
    pub m: Vec<Tensor<1>>,
    pub v: Vec<Tensor<1>>,
}

impl AdamW {
    pub fn zeros_like(params: &[Tensor<1>]) -> Self {
        let z = |p: &Tensor<1>| p.zeros_like();
        Self {
            m: params.iter().map(z).collect(),
            v: params.iter().map(z).collect(),
        }
    }

    /// One update at optimizer step `t` (1-based) with learning rate `lr`.
    pub fn step(
        &mut self,
        params: &mut [Tensor<1>],
        grads: &[Tensor<1>],
        specs: &[ParamSpec],
        t: u64,
        lr: f64,
        c: &OptimConfig,
    ) {
        if c.kind == OptimKind::Sgd {
            for i in 0..params.len() {
                let mut p = params[i].clone();
                if specs[i].decay && c.weight_decay > 0.0 {
                    p = p * (1.0 - lr * c.weight_decay);
                }
                params[i] = p - grads[i].clone() * lr;
            }
            return;
        }
        let bc1 = 1.0 - c.beta1.powi(t as i32);
        let bc2 = 1.0 - c.beta2.powi(t as i32);
        let step_size = lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        for i in 0..params.len() {
            let g = grads[i].clone();
            let mut p = params[i].clone();
            if specs[i].decay && c.weight_decay > 0.0 {
                p = p * (1.0 - lr * c.weight_decay);
            }
            let m = self.m[i].clone() + (g.clone() - self.m[i].clone()) * (1.0 - c.beta1);
            let v = self.v[i].clone() * c.beta2 + g.clone() * g * (1.0 - c.beta2);
            let denom = (v.clone().sqrt() / bc2_sqrt) + c.eps;
            params[i] = p - (m.clone() / denom) * step_size;
            self.m[i] = m;
            self.v[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Two steps on one scalar parameter, against the formula evaluated by hand in f64.
    #[test]
    fn matches_the_reference_formula() {
        let d = Device::flex();
        let c = OptimConfig {
            kind: OptimKind::Adamw,
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.5,
            grad_clip: 0.0,
            grad_accum: 1,
        };
        let specs = vec![ParamSpec::new("w", &[1, 1])];
        let mut p = vec![Tensor::<1>::from_floats([1.0], &d)];
        let mut opt = AdamW::zeros_like(&p);
        let grads = [0.5f64, -0.25];
        let (mut x, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for (i, g) in grads.iter().enumerate() {
            let t = i as u64 + 1;
            opt.step(
                &mut p,
                &[Tensor::<1>::from_floats([*g as f32], &d)],
                &specs,
                t,
                c.lr,
                &c,
            );
            x *= 1.0 - c.lr * c.weight_decay;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            let mhat = m / (1.0 - c.beta1.powi(t as i32));
            let vhat = v / (1.0 - c.beta2.powi(t as i32));
            x -= c.lr * mhat / (vhat.sqrt() + c.eps);
        }
        let got: f32 = p[0].clone().into_scalar();
        assert!((got as f64 - x).abs() < 1e-6, "got {got}, expected {x}");
    }

    #[test]
    fn no_decay_for_one_dimensional_parameters() {
        let d = Device::flex();
        let c = OptimConfig {
            weight_decay: 1.0,
            ..OptimConfig::default()
        };
        let specs = vec![ParamSpec::new("bias", &[1])];
        let mut p = vec![Tensor::<1>::from_floats([2.0], &d)];
        let mut opt = AdamW::zeros_like(&p);
        opt.step(
            &mut p,
            &[Tensor::<1>::from_floats([0.0], &d)],
            &specs,
            1,
            0.1,
            &c,
        );
        let got: f32 = p[0].clone().into_scalar();
        assert_eq!(got, 2.0);
    }

    /// SGD: θ ← θ(1 − lr·wd) − lr·g for decayed parameters, θ − lr·g for the rest; moments
    /// untouched.
    #[test]
    fn sgd_takes_plain_gradient_steps() {
        let d = Device::flex();
        let c = OptimConfig {
            kind: OptimKind::Sgd,
            lr: 0.1,
            weight_decay: 0.5,
            ..OptimConfig::default()
        };
        let specs = vec![ParamSpec::new("w", &[1, 1]), ParamSpec::new("b", &[1])];
        let mut p = vec![
            Tensor::<1>::from_floats([1.0], &d),
            Tensor::<1>::from_floats([2.0], &d),
        ];
        let mut opt = AdamW::zeros_like(&p);
        let g = [
            Tensor::<1>::from_floats([0.5], &d),
            Tensor::<1>::from_floats([-1.0], &d),
        ];
        opt.step(&mut p, &g, &specs, 1, 0.1, &c);
        let w: f32 = p[0].clone().into_scalar();
        let b: f32 = p[1].clone().into_scalar();
        assert!((w - (1.0 * 0.95 - 0.05)).abs() < 1e-7, "{w}");
        assert!((b - 2.1).abs() < 1e-7, "{b}");
        let m: f32 = opt.m[0].clone().into_scalar();
        assert_eq!(m, 0.0);
    }
}
