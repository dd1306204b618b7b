//! cuBLASLt's per-device state: the handle, the primary context it was made in, a workspace per
//! CUDA stream, and the plans (operation descriptor, matrix layouts, chosen algorithm) cached
//! by everything the heuristic's answer depends on.
//!
//! Sources: cuBLASLt API reference (`cublasLtMatmul`, `cublasLtMatmulAlgoGetHeuristic`,
//! `cublasLtMatmulDescAttributes_t`, `cublasLtMatmulPreferenceAttributes_t`); the 32 MiB
//! workspace is cudarc's default for Hopper (`cudarc::cublaslt::safe`) and the one
//! tracel-ai/cubecl#1440 uses. `docs/design/cublaslt-linear.md` §2.

use std::collections::HashMap;
use std::ffi::c_void;
use std::mem::{size_of, size_of_val};

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;
use cudarc::driver::result as drv;
use cudarc::driver::sys::{CUcontext, CUdeviceptr};

use crate::model::cublaslt::layout::{LtEpilogue, LtGemm};

/// The workspace each stream gets, in bytes.
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// What a plan depends on: the column-major call and the alignment (in bytes, up to 256) of
/// each pointer, which limits the kernels the heuristic may choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlanKey {
    pub gemm: LtGemm,
    pub align: [u32; 3],
}

/// The largest power of two up to 256 that divides `ptr`.
pub fn alignment(ptr: u64) -> u32 {
    if ptr == 0 {
        256
    } else {
        (1u32 << ptr.trailing_zeros().min(8)).min(256)
    }
}

/// A cached call: descriptor, layouts of the first operand, the second and the output, and
/// the algorithm the heuristic chose within the workspace. Destroys its descriptors on drop.
pub struct Plan {
    pub desc: sys::cublasLtMatmulDesc_t,
    pub layouts: [sys::cublasLtMatrixLayout_t; 3],
    pub algo: sys::cublasLtMatmulAlgo_t,
}

/// One device's cuBLASLt state. Raw CUDA handles, used only under [`super::state`]'s lock.
pub struct DeviceLt {
    pub ctx: CUcontext,
    pub handle: sys::cublasLtHandle_t,
    workspaces: HashMap<usize, CUdeviceptr>,
    plans: HashMap<PlanKey, Result<Plan, String>>,
    /// Calls the heuristic refused (at any alignment): checked before the buffers are fetched,
    /// so that a refused epilogue costs no host round trips on later steps.
    pub refused: HashMap<LtGemm, String>,
}

// SAFETY: the handles are plain pointers that CUDA allows any thread to use with the context
// current; every use is serialised by the lock that owns this value.
unsafe impl Send for DeviceLt {}

fn err(what: &str) -> impl Fn(lt::CublasError) -> String + '_ {
    move |e| format!("cuBLASLt {what}: {e:?}")
}

/// Sets one descriptor or preference attribute from a value.
macro_rules! set_attr {
    ($f:path, $obj:expr, $attr:expr, $v:expr) => {{
        let v = $v;
        $f(
            $obj,
            $attr,
            (&v as *const _) as *const c_void,
            size_of_val(&v),
        )
        .map_err(err(stringify!($attr)))
    }};
}

impl DeviceLt {
    /// Retains device `index`'s primary context (the one cubecl-cuda uses), makes it current and
    /// creates a cuBLASLt handle in it.
    pub fn new(index: usize) -> Result<Self, String> {
        let ctx = (|| {
            drv::init()?;
            let dev = drv::device::get(index as i32)?;
            // SAFETY: a valid device ordinal; retaining the primary context only counts a use.
            let ctx = unsafe { drv::primary_ctx::retain(dev)? };
            // SAFETY: a context just retained.
            unsafe { drv::ctx::set_current(ctx)? };
            Ok::<_, drv::DriverError>(ctx)
        })()
        .map_err(|e| format!("CUDA device {index}: {e:?}"))?;
        let handle = lt::create_handle().map_err(err("create"))?;
        Ok(Self {
            ctx,
            handle,
            workspaces: HashMap::new(),
            plans: HashMap::new(),
            refused: HashMap::new(),
        })
    }

    /// The workspace for `stream`, allocated on first use and kept: GEMMs on one stream run in
    /// order, so they can share it.
    pub fn workspace(&mut self, stream: usize) -> Result<CUdeviceptr, String> {
        if let Some(p) = self.workspaces.get(&stream) {
            return Ok(*p);
        }
        // SAFETY: this device's context is current (the caller's duty, see `state`).
        let p = unsafe { drv::malloc_sync(WORKSPACE_BYTES) }
            .map_err(|e| format!("cuBLASLt workspace ({WORKSPACE_BYTES} bytes): {e:?}"))?;
        self.workspaces.insert(stream, p);
        Ok(p)
    }

    /// The plan for `key`, built (and its heuristic answer cached, a refusal too) on first use.
    pub fn plan(&mut self, key: PlanKey) -> Result<&Plan, String> {
        let handle = self.handle;
        let plan = self.plans.entry(key).or_insert_with(|| build(handle, &key));
        if let Err(e) = plan {
            self.refused.insert(key.gemm, e.clone());
        }
        plan.as_ref().map_err(Clone::clone)
    }
}

/// cuBLASLt's epilogue value.
fn epilogue(e: LtEpilogue) -> sys::cublasLtEpilogue_t {
    match e {
        LtEpilogue::Default => sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT,
        LtEpilogue::Bias => sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS,
        LtEpilogue::BGradA => sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BGRADA,
    }
}

/// Descriptor (f32 compute and scale), layouts (bf16 operands, f32 output; column-major, as
/// [`LtGemm`] gives them) and the heuristic's first algorithm within the workspace.
fn build(handle: sys::cublasLtHandle_t, key: &PlanKey) -> Result<Plan, String> {
    use sys::cublasLtMatmulDescAttributes_t as D;
    use sys::cublasLtMatmulPreferenceAttributes_t as P;
    let g = key.gemm;
    let desc = lt::create_matmul_desc(
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        sys::cudaDataType::CUDA_R_32F,
    )
    .map_err(err("matmul descriptor"))?;
    // cublasOperation_t: 0 = N, 1 = T.
    let op = |t: bool| i32::from(t);
    // The stored shapes of op(first) (m×k) and op(second) (k×n).
    let (rows_first, cols_first) = if g.trans_first {
        (g.k, g.m)
    } else {
        (g.m, g.k)
    };
    let (rows_second, cols_second) = if g.trans_second {
        (g.n, g.k)
    } else {
        (g.k, g.n)
    };
    let bf16 = sys::cudaDataType::CUDA_R_16BF;
    let f32t = sys::cudaDataType::CUDA_R_32F;
    // Owned from here: on an early return, `Drop` destroys what was created.
    let mut plan = Plan {
        desc,
        layouts: [std::ptr::null_mut(); 3],
        // SAFETY: a plain-data struct of integers, overwritten by the heuristic's answer.
        algo: unsafe { std::mem::zeroed() },
    };
    // SAFETY: `desc` and `pref` are live descriptors made here; every value has the size and
    // type the attribute's documentation gives.
    unsafe {
        set_attr!(
            lt::set_matmul_desc_attribute,
            desc,
            D::CUBLASLT_MATMUL_DESC_TRANSA,
            op(g.trans_first)
        )?;
        set_attr!(
            lt::set_matmul_desc_attribute,
            desc,
            D::CUBLASLT_MATMUL_DESC_TRANSB,
            op(g.trans_second)
        )?;
        set_attr!(
            lt::set_matmul_desc_attribute,
            desc,
            D::CUBLASLT_MATMUL_DESC_EPILOGUE,
            epilogue(g.epilogue)
        )?;
        for (i, (t, r, c, ld)) in [
            (bf16, rows_first, cols_first, g.ld_first),
            (bf16, rows_second, cols_second, g.ld_second),
            (f32t, g.m, g.n, g.ldc),
        ]
        .into_iter()
        .enumerate()
        {
            plan.layouts[i] = lt::create_matrix_layout(t, r as u64, c as u64, ld as i64)
                .map_err(err("matrix layout"))?;
        }
        let pref = lt::create_matmul_pref().map_err(err("preference"))?;
        let mut prefs = || -> Result<(), String> {
            set_attr!(
                lt::set_matmul_pref_attribute,
                pref,
                P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                WORKSPACE_BYTES as u64
            )?;
            for (attr, a) in [
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align[0]),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align[1]),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align[2]),
                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align[2]),
            ] {
                set_attr!(lt::set_matmul_pref_attribute, pref, attr, a)?;
            }
            let l = plan.layouts;
            let h = lt::get_matmul_algo_heuristic(handle, desc, l[0], l[1], l[2], l[2], pref)
                .map_err(|e| {
                    format!(
                        "cuBLASLt has no algorithm for {g:?} (pointer alignments {:?}): {e:?}",
                        key.align
                    )
                })?;
            plan.algo = h.algo;
            Ok(())
        };
        let found = prefs();
        let _ = lt::destroy_matmul_pref(pref);
        found?;
    }
    Ok(plan)
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each was created by `build` and is destroyed once, here; null ones were not
        // created.
        unsafe {
            for l in self.layouts.into_iter().filter(|l| !l.is_null()) {
                let _ = lt::destroy_matrix_layout(l);
            }
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// Sets the plan's bias pointer (the BIAS epilogue's input, BGRADA's output); the descriptor is
/// read when the call is enqueued, so one plan serves any bias.
///
/// # Safety
/// `plan.desc` is live, and the caller holds the lock over the plan until the call is enqueued.
pub unsafe fn set_bias(plan: &Plan, bias: CUdeviceptr) -> Result<(), String> {
    let p = bias as *const c_void;
    set_attr!(
        lt::set_matmul_desc_attribute,
        plan.desc,
        sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
        p
    )
}

const _: () = assert!(size_of::<sys::cublasLtEpilogue_t>() == 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_alignment_classes() {
        assert_eq!(alignment(0x7f00_0000_0000), 256);
        assert_eq!(alignment(0x7f00_0000_0010), 16);
        assert_eq!(alignment(0x7f00_0000_0002), 2);
        assert_eq!(alignment(0x7f00_0000_0200), 256);
    }
}
