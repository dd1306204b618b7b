//! The [`Compute`] alternatives against burn's plain ops on the CPU: the same loss and the same
//! gradients for the gather embedding (up to float rounding), and close ones for bf16 matmuls
//! (bf16 keeps 8 bits of mantissa, so about 3 significant digits).

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::gpt::{Compute, Gpt, GptShape};
use super::params::upload;

fn model(compute: Compute) -> (Gpt, Vec<Tensor<1>>, Device) {
    let mut gpt = Gpt::new(GptShape::tiny());
    gpt.compute = compute;
    let device = Device::flex();
    let params = upload(gpt.specs(), &gpt.init(11), &device).unwrap();
    (gpt, params, device)
}

/// Loss and every parameter's gradient, flattened, on a fixed batch with repeated tokens (so
/// the embedding backward has rows that several positions add into).
fn loss_and_grads(compute: Compute) -> (f64, Vec<Vec<f32>>) {
    let (gpt, params, device) = model(compute);
    let ids: Vec<i64> = (0..2 * 16).map(|i| (i * 7 % 13) as i64).collect();
    let targets: Vec<i64> = (0..2 * 16).map(|i| ((i * 5 + 3) % 64) as i64).collect();
    let idx = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 16]), &device);
    let tgt = Tensor::<2, Int>::from_data(TensorData::new(targets, [2, 16]), &device);
    let tracked: Vec<Tensor<1>> = params
        .iter()
        .map(|p| p.clone().autodiff().require_grad())
        .collect();
    let loss = gpt.loss(&tracked, idx.autodiff(), tgt.autodiff(), 0.0);
    let grads = loss.backward();
    let g = tracked
        .iter()
        .map(|p| {
            p.grad(&grads)
                .expect("every parameter gets a gradient")
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        })
        .collect();
    let l: f32 = loss.inner().into_scalar();
    (l as f64, g)
}

/// Max over parameters of ‖a − b‖ / ‖b‖.
fn worst_relative(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let diff: f64 = x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
            let norm: f64 = y.iter().map(|q| (*q as f64).powi(2)).sum();
            (diff / norm.max(1e-30)).sqrt()
        })
        .fold(0.0, f64::max)
}

#[test]
fn gather_embedding_matches_the_embedding_op() {
    let (l0, g0) = loss_and_grads(Compute::default());
    let (l1, g1) = loss_and_grads(Compute {
        gather_embedding: true,
        ..Compute::default()
    });
    let worst = worst_relative(&g1, &g0);
    println!("gather embedding: loss {l1} vs {l0}, worst gradient relative error {worst:.2e}");
    assert!((l1 - l0).abs() < 1e-6 * l0.abs(), "{l1} vs {l0}");
    assert!(worst < 1e-5, "{worst}");
}

#[test]
fn bf16_matmuls_stay_close_to_f32() {
    let (l0, g0) = loss_and_grads(Compute::default());
    let (l1, g1) = loss_and_grads(Compute {
        bf16_matmuls: true,
        ..Compute::default()
    });
    let worst = worst_relative(&g1, &g0);
    println!("bf16 matmuls: loss {l1} vs {l0}, worst gradient relative error {worst:.2e}");
    // Different (the casts are real) but close: bf16 rounds at about 4e-3 relative.
    assert!(
        l1 != l0 || worst > 0.0,
        "bf16 changed nothing: the casts are not applied"
    );
    assert!((l1 - l0).abs() < 1e-2 * l0.abs(), "{l1} vs {l0}");
    assert!(worst < 5e-2, "{worst}");
}

/// The model with `cublaslt` on (here the op's reference GEMMs; on CUDA cuBLASLt's): the
/// linears and the head through the bf16 op, attention's matmuls in f32. Close to f32, as bf16
/// matmuls, and not equal to them (attention stays f32 here).
#[test]
fn cublaslt_linears_stay_close_to_f32() {
    let (l0, g0) = loss_and_grads(Compute::default());
    let (lb, gb) = loss_and_grads(Compute {
        bf16_matmuls: true,
        ..Compute::default()
    });
    let (l1, g1) = loss_and_grads(Compute {
        cublaslt: true,
        ..Compute::default()
    });
    let worst = worst_relative(&g1, &g0);
    println!("cuBLASLt linears: loss {l1} vs {l0}, worst gradient relative error {worst:.2e}");
    assert!(l1 != l0, "the bf16 op changed nothing: it is not applied");
    assert!(
        l1 != lb || worst_relative(&g1, &gb) > 0.0,
        "same as bf16_matmuls everywhere"
    );
    assert!((l1 - l0).abs() < 1e-2 * l0.abs(), "{l1} vs {l0}");
    assert!(worst < 5e-2, "{worst}");
}

#[test]
fn fused_ops_give_the_plain_loss_and_gradients() {
    let (l0, g0) = loss_and_grads(Compute::default());
    for (name, compute) in [
        (
            "fused attention",
            Compute {
                fused_attention: true,
                ..Compute::default()
            },
        ),
        (
            "fused layer norm",
            Compute {
                fused_layer_norm: true,
                ..Compute::default()
            },
        ),
        (
            "fused cross-entropy",
            Compute {
                fused_cross_entropy: true,
                ..Compute::default()
            },
        ),
        (
            "fused bias",
            Compute {
                fused_bias: true,
                ..Compute::default()
            },
        ),
        (
            "flash attention",
            Compute {
                flash_attention: true,
                ..Compute::default()
            },
        ),
        ("all fused", Compute::all_fused()),
        (
            "all fused and flash attention",
            Compute {
                flash_attention: true,
                ..Compute::all_fused()
            },
        ),
    ] {
        let (l1, g1) = loss_and_grads(compute);
        let worst = worst_relative(&g1, &g0);
        println!("{name}: loss {l1} vs {l0}, worst gradient relative error {worst:.2e}");
        assert!((l1 - l0).abs() < 1e-6 * l0.abs(), "{name}: {l1} vs {l0}");
        assert!(worst < 1e-5, "{name}: {worst}");
    }
}

/// Without autodiff (evaluation and generation) the fused ops take their backends' own forward
/// implementations; the logits must still be burn's plain ones, with and without a KV cache.
#[test]
fn fused_ops_without_autodiff_give_the_plain_logits() {
    let logits = |compute: Compute| -> (Vec<f32>, Vec<f32>) {
        let (gpt, params, device) = model(compute);
        let ids: Vec<i64> = (0..2 * 12).map(|i| (i * 7 % 13) as i64).collect();
        let idx = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 12]), &device);
        let full = gpt.forward(&params, idx.clone(), 0.0);
        // A cached prefill of 8 tokens, then 4 more in one call: the mask has an offset.
        let mut cache = super::gpt::KvCache::new(&gpt);
        let _ = gpt.forward_cached(&params, idx.clone().narrow(1, 0, 8), &mut cache);
        let tail = gpt.forward_cached(&params, idx.narrow(1, 8, 4), &mut cache);
        let flat = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
        (flat(full), flat(tail))
    };
    let (plain_full, plain_tail) = logits(Compute::default());
    let (fused_full, fused_tail) = logits(Compute::all_fused());
    let worst = worst_relative(&[fused_full, fused_tail], &[plain_full.clone(), plain_tail]);
    println!("fused ops without autodiff: worst logits relative error {worst:.2e}");
    assert!(!plain_full.is_empty());
    assert!(worst < 1e-5, "{worst}");
}
