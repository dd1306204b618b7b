//! Finding and loading cuBLASLt (`libcublasLt.so.13`) before the first GEMM, so that a missing
//! or wrong library is a clear message and a fall-back to burn's matmul, not a panic inside
//! cudarc.
//!
//! Why this exists: cudarc 0.19.10 (feature `cublaslt`, `fallback-dynamic-loading`) `dlopen`s
//! cuBLASLt by bare names on first use (`libcublasLt.so`, …, `libcublasLt.so.13`, `.12`, …;
//! `cudarc::get_lib_name_candidates`) and panics when none loads. The library most GPU machines
//! have is PyTorch's pip wheel (`nvidia-cublas`, in `site-packages/nvidia/cu13/lib` for CUDA 13),
//! off the loader's path. The bindings are CUDA 13.0's (`CUDARC_CUDA_VERSION` in
//! `.cargo/config.toml`), so only major version 13 is accepted.
//!
//! What it does: [`LtSearch::find`] looks, in order, at `LMTRAIN_CUBLASLT` (a file or a
//! directory; when set, nothing else), the directories of `LD_LIBRARY_PATH`, the pip wheels'
//! `nvidia/cu13/lib` and `nvidia/cublas/lib` under the Python site-packages directories, then
//! the system's library directories (the same lists as NCCL's search,
//! [`crate::train::dp::nccl_lib::NcclSearch`]). [`load`] opens the file found and keeps it open:
//! the dynamic loader then answers cudarc's later `dlopen("libcublasLt.so.13")` with it, since a
//! loaded library matches its soname. cudarc tries the unversioned `libcublasLt.so` first, which
//! the loader looks up on its path instead, so [`load`] then compares the version cudarc's
//! binding reports with the found file's own and refuses a difference, and any major version
//! but 13.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::train::dp::nccl_lib::{list_dirs, NcclSearch};

/// The environment variable naming cuBLASLt's library (a file) or its directory.
pub const ENV_CUBLASLT: &str = "LMTRAIN_CUBLASLT";

/// The CUDA major version cudarc's bindings were generated for (`CUDARC_CUDA_VERSION=13000`).
pub const BINDINGS_MAJOR: u32 = 13;

/// Where to look; [`LtSearch::from_env`] fills it from the process's environment.
#[derive(Clone, Debug, Default)]
pub struct LtSearch {
    /// `LMTRAIN_CUBLASLT`, when set.
    pub explicit: Option<PathBuf>,
    pub ld_library_path: Vec<PathBuf>,
    /// Python site-packages directories (each may hold `nvidia/cu13/lib`).
    pub site_packages: Vec<PathBuf>,
    pub system_dirs: Vec<PathBuf>,
}

/// `libcublasLt.so.13` or `libcublasLt.so.13.x.y`, ranked by length (the soname first).
fn is_lt_name(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("libcublasLt.so.")?;
    let major = rest.split('.').next()?;
    (major == BINDINGS_MAJOR.to_string() && rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then_some(rest.len())
}

/// The cuBLASLt library of major version 13 in `dir`, the soname before longer names.
fn lt_in(dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(usize, PathBuf)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rank) = is_lt_name(&name) else {
            continue;
        };
        let path = e.path();
        if path.is_file() && best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, path));
        }
    }
    best.map(|(_, p)| p)
}

impl LtSearch {
    /// The search the running process would do (see the module docs).
    pub fn from_env() -> Self {
        let base = NcclSearch::from_env();
        let mut system_dirs = base.system_dirs;
        system_dirs.extend(
            glob::glob("/usr/local/cuda-13*/lib64")
                .map(|p| p.flatten().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        Self {
            explicit: std::env::var_os(ENV_CUBLASLT)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ld_library_path: base.ld_library_path,
            site_packages: base.site_packages,
            system_dirs,
        }
    }

    /// The first `libcublasLt.so.13*` in the search order, with where it was found.
    ///
    /// # Errors
    /// `LMTRAIN_CUBLASLT` set to something that is not such a file or a directory holding one;
    /// or none anywhere. Both name what was searched and how to install it.
    pub fn find(&self) -> Result<(PathBuf, &'static str), String> {
        if let Some(p) = &self.explicit {
            let file = if p.is_dir() {
                lt_in(p)
            } else {
                p.is_file().then(|| p.clone())
            };
            return file.map(|f| (f, ENV_CUBLASLT)).ok_or_else(|| {
                format!(
                    "{ENV_CUBLASLT}={} is neither a cuBLASLt library file nor a directory holding libcublasLt.so.{BINDINGS_MAJOR}; point it at one (e.g. …/site-packages/nvidia/cu13/lib), or unset it to search the usual places",
                    p.display()
                )
            });
        }
        let wheel_dirs: Vec<PathBuf> = self
            .site_packages
            .iter()
            .flat_map(|s| [s.join("nvidia/cu13/lib"), s.join("nvidia/cublas/lib")])
            .collect();
        for (dirs, source) in [
            (&self.ld_library_path, "LD_LIBRARY_PATH"),
            (&wheel_dirs, "the pip wheel nvidia-cublas"),
            (&self.system_dirs, "the system library directories"),
        ] {
            if let Some(path) = dirs.iter().find_map(|d| lt_in(d)) {
                return Ok((path, source));
            }
        }
        let list = list_dirs;
        Err(format!(
            "cuBLASLt not found: model.matmul = \"cublaslt\" needs libcublasLt.so.{BINDINGS_MAJOR} (CUDA 13), and none was in LD_LIBRARY_PATH ({}), the pip wheel directories ({}) or the system library directories ({}). Install it (`pip install nvidia-cublas`, which PyTorch for CUDA 13 brings, or the CUDA 13 toolkit), or set {ENV_CUBLASLT} to the library file or its directory",
            list(&self.ld_library_path),
            list(&wheel_dirs),
            list(&self.system_dirs)
        ))
    }
}

/// The loaded library: its file and cuBLASLt's version (e.g. 130401 for 13.4.1).
#[derive(Clone, Debug)]
pub struct LoadedLt {
    pub path: PathBuf,
    pub source: &'static str,
    pub version: usize,
}

/// `cublasLtGetVersion`'s encoding, major·10000 + minor·100 + patch, as "13.4.1".
pub fn version_string(v: usize) -> String {
    format!("{}.{}.{}", v / 10_000, v / 100 % 100, v % 100)
}

/// Finds, opens and checks cuBLASLt once per process (see the module docs); later calls give
/// the first answer.
///
/// # Errors
/// Not found, not loadable, or a major version other than 13: the message says which, and how
/// to fix it.
pub fn load() -> Result<&'static LoadedLt, String> {
    static LOADED: OnceLock<Result<LoadedLt, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| load_from(&LtSearch::from_env()))
        .as_ref()
        .map_err(Clone::clone)
}

fn load_from(search: &LtSearch) -> Result<LoadedLt, String> {
    let (path, source) = search.find()?;
    // SAFETY: loading runs the library's initialisers; cuBLASLt's are those of any CUDA library.
    let lib = unsafe { libloading::Library::new(&path) }
        .map_err(|e| format!("cannot load {} (found in {source}): {e}", path.display()))?;
    // The version of the file found, asked through its own handle.
    // SAFETY: `cublasLtGetVersion` takes nothing and returns a size_t, in every cuBLASLt.
    let ours = unsafe {
        lib.get::<unsafe extern "C" fn() -> usize>(b"cublasLtGetVersion\0")
            .map(|f| f())
            .map_err(|e| format!("{} is not cuBLASLt: {e}", path.display()))?
    };
    // Kept open for the whole process: cudarc's own dlopen by soname resolves to it.
    std::mem::forget(lib);
    // SAFETY: opens (or finds already open) the library by its soname; no other effect.
    if !unsafe { cudarc::cublaslt::sys::is_culib_present() } {
        return Err(format!(
            "{} loaded, but cudarc could not open cuBLASLt by its soname; set {ENV_CUBLASLT} or LD_LIBRARY_PATH to its directory",
            path.display()
        ));
    }
    // SAFETY: a plain query with no arguments, on the library cudarc has opened.
    let version = unsafe { cudarc::cublaslt::sys::cublasLtGetVersion() };
    // cudarc tries `libcublasLt.so` (and a few other names) before `libcublasLt.so.13`, and
    // the loader answers those from its search path, not from the file already loaded.
    if version != ours || version / 10_000 != BINDINGS_MAJOR as usize {
        return Err(format!(
            "cudarc opened cuBLASLt {} rather than {} ({}): an unversioned libcublasLt.so earlier on the loader's path (LD_LIBRARY_PATH, then the system's) shadows it; take that directory out of LD_LIBRARY_PATH, or put {}'s directory first",
            version_string(version),
            path.display(),
            version_string(ours),
            path.display()
        ));
    }
    Ok(LoadedLt {
        path,
        source,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, b"").unwrap();
        p
    }

    #[test]
    fn names_of_major_13_only() {
        assert!(is_lt_name("libcublasLt.so.13").is_some());
        assert!(is_lt_name("libcublasLt.so.13.4.1.3").is_some());
        assert!(is_lt_name("libcublasLt.so.12").is_none());
        assert!(is_lt_name("libcublasLt.so").is_none());
        assert!(is_lt_name("libcublas.so.13").is_none());
        assert!(is_lt_name("libcublasLt.so.13.bak").is_none());
    }

    #[test]
    fn search_order_and_errors() {
        let t = tempfile::tempdir().unwrap();
        let (ld, site, sys) = (
            t.path().join("ld"),
            t.path().join("site"),
            t.path().join("sys"),
        );
        let wheel = site.join("nvidia/cu13/lib");
        for d in [&ld, &wheel, &sys] {
            std::fs::create_dir_all(d).unwrap();
        }
        // A CUDA 12 library on LD_LIBRARY_PATH is passed over.
        touch(&ld, "libcublasLt.so.12");
        let in_sys = touch(&sys, "libcublasLt.so.13");
        touch(&wheel, "libcublasLt.so.13.4.1");
        let in_wheel = touch(&wheel, "libcublasLt.so.13");
        let mut s = LtSearch {
            explicit: None,
            ld_library_path: vec![ld.clone()],
            site_packages: vec![site.clone()],
            system_dirs: vec![sys.clone()],
        };
        assert_eq!(
            s.find().unwrap(),
            (in_wheel.clone(), "the pip wheel nvidia-cublas")
        );
        s.site_packages.clear();
        assert_eq!(s.find().unwrap().0, in_sys);
        s.explicit = Some(wheel.clone());
        assert_eq!(s.find().unwrap(), (in_wheel, ENV_CUBLASLT));
        s.explicit = Some(ld.clone());
        let e = s.find().unwrap_err();
        assert!(
            e.contains(ENV_CUBLASLT) && e.contains(&ld.display().to_string()),
            "{e}"
        );
        s.explicit = None;
        s.system_dirs.clear();
        let e = s.find().unwrap_err();
        assert!(
            e.contains("cuBLASLt not found") && e.contains("pip install nvidia-cublas"),
            "{e}"
        );
    }

    /// The real library, where this machine has one (PyTorch's CUDA 13 wheel in the project's
    /// benchmark venv, or a toolkit): it loads, and cudarc's binding reports major version 13.
    /// cuBLASLt's version query needs no GPU.
    #[test]
    fn loads_a_real_library_where_present() {
        let mut s = LtSearch::from_env();
        s.site_packages.extend(
            glob::glob(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.venv-*/lib/python3*/site-packages"
            ))
            .map(|p| p.flatten().collect::<Vec<_>>())
            .unwrap_or_default(),
        );
        if s.find().is_err() {
            eprintln!("skipped: no libcublasLt.so.13 on this machine (scripts/sac_bench_torch.py --venv-only installs PyTorch's)");
            return;
        }
        let l = load_from(&s).unwrap();
        assert_eq!(l.version / 10_000, 13, "{}", version_string(l.version));
        assert!(version_string(130401) == "13.4.1");
    }
}
