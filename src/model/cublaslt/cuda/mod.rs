//! The cuBLASLt bodies of [`super::LtOps`] on the cubecl backend's CUDA devices: the library
//! lookup ([`library`]), the per-device handle, workspaces and plan cache ([`plan`]), and one
//! GEMM on cubecl's stream ([`gemm`]). Each function here either enqueues its GEMM or returns an
//! error before enqueuing anything, and the caller then uses the reference body.

pub mod gemm;
pub mod library;
pub mod plan;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeDevice;

use gemm::{dims2, empty_f32, prepared};

/// Says `msg` on stderr the first time it comes up in this process.
pub fn say_once(msg: String) {
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if said.get_or_insert_with(HashSet::new).insert(msg.clone()) {
        eprintln!("{msg}");
    }
}

/// The CUDA device index of `device` when cuBLASLt can serve it: a CUDA device, and the library
/// loaded (otherwise said once, and `None`).
pub fn usable(device: &CubeDevice) -> Option<usize> {
    let CubeDevice::Cuda(d) = device else {
        return None;
    };
    match library::load() {
        Ok(_) => Some(d.index),
        Err(e) => {
            say_once(format!("{e}; the linears use burn's matmul"));
            None
        }
    }
}

/// GEMMs computed by the reference body after cuBLASLt failed, and GEMMs that ran on cuBLASLt
/// without their epilogue, since the process started (for benchmarks, which must not time a
/// fall-back as cuBLASLt).
static GEMM_FALLBACKS: AtomicUsize = AtomicUsize::new(0);
static EPILOGUE_FALLBACKS: AtomicUsize = AtomicUsize::new(0);

/// (whole-GEMM fall-backs, epilogue fall-backs) so far; see [`fall_back`].
pub fn fallback_counts() -> (usize, usize) {
    (
        GEMM_FALLBACKS.load(Ordering::Relaxed),
        EPILOGUE_FALLBACKS.load(Ordering::Relaxed),
    )
}

/// A GEMM (or, when `what` names one, an epilogue) that could not run on cuBLASLt: counted, and
/// said once per reason.
pub fn fall_back(what: &str, e: &str) {
    let counter = if what.ends_with("epilogue") {
        &EPILOGUE_FALLBACKS
    } else {
        &GEMM_FALLBACKS
    };
    counter.fetch_add(1, Ordering::Relaxed);
    say_once(format!(
        "cuBLASLt {what}: {e}; computed without it (burn's matmul, or a separate bias op)"
    ));
}

/// `y [M, N] = x·op(w) (+ b)`, the bias added in the GEMM's epilogue. Also says whether the bias
/// was added: where cuBLASLt has no algorithm with the BIAS epilogue for the shape, the GEMM runs
/// without it and the caller adds `b`.
pub fn linear(
    index: usize,
    x: CubeTensor,
    w: CubeTensor,
    b: Option<CubeTensor>,
    w_out_in: bool,
) -> Result<(CubeTensor, bool), String> {
    let (x, w) = (prepared(x, DType::BF16), prepared(w, DType::BF16));
    let b = b.map(|b| prepared(b, DType::F32));
    let ([m, k], [r, c]) = (dims2(&x), dims2(&w));
    let n = if w_out_in { r } else { c };
    let y = empty_f32(&x, Shape::new([m, n]));
    let run = |bias: Option<&CubeTensor>| {
        gemm::gemm(
            index,
            (m, n, k),
            (&x, false),
            (&w, w_out_in),
            &y,
            bias,
            None,
        )
    };
    if let Some(b) = &b {
        match run(Some(b)) {
            Ok(()) => return Ok((y, true)),
            Err(e) => fall_back("BIAS epilogue", &e),
        }
    }
    run(None)?;
    Ok((y, b.is_none()))
}

/// `dx [M, K] = dy·op(w)ᵀ`.
pub fn grad_input(
    index: usize,
    dy: CubeTensor,
    w: CubeTensor,
    w_out_in: bool,
) -> Result<CubeTensor, String> {
    let (dy, w) = (prepared(dy, DType::BF16), prepared(w, DType::BF16));
    let ([m, n], [r, c]) = (dims2(&dy), dims2(&w));
    let k = if w_out_in { c } else { r };
    let dx = empty_f32(&dy, Shape::new([m, k]));
    // op(w)ᵀ: w stored [K, N] is read transposed; stored [N, K] it is read as is.
    gemm::gemm(
        index,
        (m, k, n),
        (&dy, false),
        (&w, !w_out_in),
        &dx,
        None,
        None,
    )?;
    Ok(dx)
}

/// The weight gradient in `w`'s layout and, when `with_bias` and `w` is stored `[K, N]`, the
/// bias gradient from the same GEMM's BGRADA epilogue (`None` otherwise, or where cuBLASLt has
/// no algorithm with it: the caller sums it).
pub fn grad_weight(
    index: usize,
    x: CubeTensor,
    dy: CubeTensor,
    w_out_in: bool,
    with_bias: bool,
) -> Result<(CubeTensor, Option<CubeTensor>), String> {
    let (x, dy) = (prepared(x, DType::BF16), prepared(dy, DType::BF16));
    let ([m, k], [_, n]) = (dims2(&x), dims2(&dy));
    if w_out_in {
        // dw [N, K] = dyᵀ·x; the bias gradient would be the first operand's sums (BGRADB in
        // cuBLASLt's terms), which the mapping does not cover: the caller sums dy itself.
        let dw = empty_f32(&x, Shape::new([n, k]));
        gemm::gemm(index, (n, k, m), (&dy, true), (&x, false), &dw, None, None)?;
        return Ok((dw, None));
    }
    let dw = empty_f32(&x, Shape::new([k, n]));
    let run = |db: Option<&CubeTensor>| {
        gemm::gemm(index, (k, n, m), (&x, true), (&dy, false), &dw, None, db)
    };
    if with_bias {
        let db = empty_f32(&x, Shape::new([n]));
        match run(Some(&db)) {
            Ok(()) => return Ok((dw, Some(db))),
            Err(e) => fall_back("BGRADA epilogue", &e),
        }
    }
    run(None)?;
    Ok((dw, None))
}
