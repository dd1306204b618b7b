//! One cuBLASLt GEMM on cubecl tensors, enqueued on cubecl's own CUDA stream.
//!
//! Order without a host sync (`docs/design/cublaslt-linear.md` §1.3): the op runs on burn's
//! fusion thread, under the stream id of the thread that recorded it. `get_resource` for each
//! buffer is a blocking call to cubecl's device thread, which first enqueues everything
//! submitted before it and makes the current stream wait (an event, not a host sync) on the
//! stream that produced the buffer; the patched cubecl-cuda hands back that stream
//! (`patches/cubecl-cuda-0.11.3-stream.diff`). The GEMM is enqueued on it before the call
//! returns, so every later launch on the stream follows it. The returned guards keep each
//! allocation in place until the GEMM is enqueued; memory reused afterwards is reused in stream
//! order.
//!
//! A buffer owned by another stream is copied onto the current one first: its owner could
//! reuse it, once the guard is dropped, before this stream's GEMM has read it.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use burn::backend::TensorMetadata;
use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use cubecl_cuda::CudaRuntime;
use cubecl_environment::stream::StreamId;
use cubecl_runtime::runtime::Runtime;

use super::plan::{alignment, set_bias, DeviceLt, PlanKey, WORKSPACE_BYTES};
use crate::model::cublaslt::layout::{LtGemm, Operand, RowEpilogue};

type CudaServer = <CudaRuntime as Runtime>::Server;

fn devices() -> &'static Mutex<HashMap<usize, Result<DeviceLt, String>>> {
    static D: OnceLock<Mutex<HashMap<usize, Result<DeviceLt, String>>>> = OnceLock::new();
    D.get_or_init(Default::default)
}

/// Why the heuristic refused `g` on device `index` before, if it did.
fn refused(index: usize, g: &LtGemm) -> Option<String> {
    let devices = devices().lock().ok()?;
    devices.get(&index)?.as_ref().ok()?.refused.get(g).cloned()
}

/// A dense row-major tensor of `dtype` on the current stream: cast, made contiguous, or copied
/// as needed (each a cubecl kernel on the current stream). Dense: a cast's or a copy's output
/// may be pitched (rows padded), which `into_contiguous` undoes.
pub fn prepared(t: CubeTensor, dtype: DType) -> CubeTensor {
    use burn_cubecl::kernel::{cast, into_contiguous};
    let t = into_contiguous(cast(t, dtype));
    if t.handle.clone().binding().stream != StreamId::current() {
        into_contiguous(t.copy())
    } else {
        t
    }
}

/// A new contiguous f32 tensor like `like`'s device, of `shape`.
pub fn empty_f32(like: &CubeTensor, shape: Shape) -> CubeTensor {
    burn_cubecl::ops::numeric::empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        shape,
        DType::F32,
    )
}

/// The row-major `C [M, N] = op(A)·op(B)` (+ `bias` broadcast over rows, or with the column
/// sums of B written to `bias_grad`), as one `cublasLtMatmul` on CUDA device `index`. A and B
/// are bf16, C, `bias` and `bias_grad` f32, all contiguous, on the current stream (see
/// [`prepared`], [`empty_f32`]).
///
/// # Errors
/// cuBLASLt cannot be set up on the device, has no algorithm for the call, or refuses it: the
/// caller falls back to the reference GEMM. Nothing has been enqueued then.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    index: usize,
    (m, n, k): (usize, usize, usize),
    (a, trans_a): (&CubeTensor, bool),
    (b, trans_b): (&CubeTensor, bool),
    c: &CubeTensor,
    bias: Option<&CubeTensor>,
    bias_grad: Option<&CubeTensor>,
) -> Result<(), String> {
    let epilogue = match (bias, bias_grad) {
        (Some(_), None) => RowEpilogue::Bias,
        (None, Some(_)) => RowEpilogue::BiasGradOfB,
        (None, None) => RowEpilogue::None,
        (Some(_), Some(_)) => return Err("a bias and a bias gradient in one GEMM".into()),
    };
    let g = LtGemm::from_row_major((m, n, k), trans_a, trans_b, epilogue)?;
    if let Some(e) = refused(index, &g) {
        return Err(e);
    }
    let (first, second) = match (g.first, g.second) {
        (Operand::RowB, Operand::RowA) => (b, a),
        _ => (a, b),
    };
    // Guards: each allocation stays in place until they drop, after the call is enqueued.
    let res = |t: &CubeTensor| {
        t.client
            .get_resource::<CudaServer>(t.handle.clone())
            .map_err(|e| format!("cubecl buffer for cuBLASLt: {e:?}"))
    };
    let r_first = res(first)?;
    let r_second = res(second)?;
    let r_c = res(c)?;
    let r_bias = bias.or(bias_grad).map(res).transpose()?;
    // Every buffer comes back with the calling stream (the patch hands out the stream the
    // command resolved, whoever owns the buffer); a null one means cubecl-cuda is not the
    // patched copy.
    let stream = r_c.resource().stream;
    if stream.is_null() {
        return Err(
            "cubecl handed out no CUDA stream with its buffers (is cubecl-cuda the patched copy in vendor/?)"
                .into(),
        );
    }
    let (p_first, p_second, p_c) = (
        r_first.resource().ptr,
        r_second.resource().ptr,
        r_c.resource().ptr,
    );
    // cuBLASLt's epilogues need a 16-byte aligned bias (llm.c's matmul_cublaslt checks the
    // same); a fresh cubecl buffer always is, a slice might not be.
    if let Some(r) = &r_bias {
        if r.resource().ptr % 16 != 0 {
            return Err("the bias vector is not 16-byte aligned".into());
        }
    }
    let key = PlanKey {
        gemm: g,
        align: [alignment(p_first), alignment(p_second), alignment(p_c)],
    };
    let mut devices = devices()
        .lock()
        .map_err(|_| "cuBLASLt state poisoned by an earlier panic".to_string())?;
    let dev = devices
        .entry(index)
        .or_insert_with(|| DeviceLt::new(index))
        .as_mut()
        .map_err(|e| e.clone())?;
    // The fusion thread never had cubecl's context made current; cubecl uses the primary one.
    // SAFETY: a context retained for the process's life.
    unsafe { cudarc::driver::result::ctx::set_current(dev.ctx) }
        .map_err(|e| format!("CUDA context: {e:?}"))?;
    let workspace = dev.workspace(stream as usize)?;
    let handle = dev.handle;
    let plan = dev.plan(key)?;
    let (alpha, beta) = (1.0f32, 0.0f32);
    // SAFETY: the pointers are live cubecl allocations of the sizes the layouts describe (held
    // by the guards above), the plan's descriptor and layouts are live, and the workspace is
    // this stream's own.
    unsafe {
        if let Some(r) = &r_bias {
            set_bias(plan, r.resource().ptr)?;
        }
        cudarc::cublaslt::result::matmul(
            handle,
            plan.desc,
            (&alpha as *const f32).cast::<c_void>(),
            (&beta as *const f32).cast::<c_void>(),
            p_first as *const c_void,
            plan.layouts[0],
            p_second as *const c_void,
            plan.layouts[1],
            p_c as *const c_void,
            plan.layouts[2],
            p_c as *mut c_void,
            plan.layouts[2],
            &plan.algo,
            workspace as *mut c_void,
            // The heuristic was limited to this size.
            WORKSPACE_BYTES,
            stream.cast(),
        )
        .map_err(|e| format!("cublasLtMatmul {g:?}: {e:?}"))?;
    }
    drop((r_first, r_second, r_c, r_bias));
    Ok(())
}

/// `t`'s shape as `[rows, cols]`.
pub fn dims2(t: &CubeTensor) -> [usize; 2] {
    t.shape().dims::<2>()
}
