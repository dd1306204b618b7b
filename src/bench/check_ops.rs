//! `lmtrain check-ops`: every fused op against burn's plain ops on the chosen device (the GPU
//! when present), forward and gradients, one line per op with the relative errors, and a
//! non-zero exit when one exceeds its bound.

use anyhow::{bail, Result};

use crate::device::{choose_device, DeviceChoice};
use crate::model::fused::check::{check_all, has_bf16, CheckShapes, OpCheck};

/// What `check-ops` was asked for.
pub struct CheckOpsOptions {
    pub device: String,
    /// "small" (odd sizes, quick) or "gpu" (GPT-2-small-like sizes).
    pub shapes: String,
    pub seed: u64,
    /// Bound on max|fused − plain|/max|plain| for the f32 ops. On the GPU both sides run f32
    /// matmuls as TF32 (cubecl does so implicitly), so they agree to ~1e-3, not to f32 rounding.
    pub max_rel_f32: f64,
    /// The same bound for the bf16 variant (bf16 keeps 8 mantissa bits).
    pub max_rel_bf16: f64,
}

fn line(c: &OpCheck, bound: f64) -> String {
    let parts: Vec<String> = c
        .deviations
        .iter()
        .map(|d| format!("{}={:.3e}", d.tensor, d.max_rel))
        .collect();
    let verdict = if c.worst() <= bound { "ok" } else { "FAIL" };
    format!(
        "CHECK op=\"{}\" {} worst={:.3e} bound={bound:.0e} {verdict}",
        c.op,
        parts.join(" "),
        c.worst()
    )
}

pub fn run(o: &CheckOpsOptions) -> Result<()> {
    let shapes = match o.shapes.as_str() {
        "small" => CheckShapes::small(),
        "gpu" => CheckShapes::gpu(),
        other => bail!("--shapes {other:?}: use small or gpu"),
    };
    crate::kernel_cache::configure(None)?;
    let chosen = choose_device(DeviceChoice::parse(&o.device)?)?;
    eprintln!(
        "[lmtrain] check-ops on {} with {shapes:?}",
        chosen.description
    );
    if !has_bf16(&chosen.device) {
        println!("SKIP op=\"attention bf16\": this device has no bf16");
    }
    // Which GEMMs the "linear bf16" lines exercise: cuBLASLt on CUDA, the op's reference
    // GEMMs elsewhere (and on CUDA without the library, saying why).
    if has_bf16(&chosen.device) {
        let (lt, note) = crate::model::cublaslt::route::resolve(
            crate::model::cublaslt::MatmulRoute::Cublaslt,
            chosen.backend,
        );
        eprintln!(
            "[lmtrain] the linear bf16 lines run {}",
            match (lt, chosen.backend) {
                (true, _) => "cuBLASLt".to_string(),
                (false, "cuda") =>
                    format!("the op's reference GEMMs: {}", note.unwrap_or_default()),
                (false, _) => "the op's reference GEMMs (cuBLASLt runs only on CUDA)".to_string(),
            }
        );
    }
    let mut failed = 0;
    for c in check_all(shapes, o.seed, &chosen.device) {
        let bound = if c.bf16 {
            o.max_rel_bf16
        } else {
            o.max_rel_f32
        };
        if c.worst() > bound {
            failed += 1;
        }
        println!("{}", line(&c, bound));
    }
    if failed > 0 {
        bail!("{failed} fused op(s) differ from burn's plain ops beyond the bound (lines marked FAIL)");
    }
    Ok(())
}
