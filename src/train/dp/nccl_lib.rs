//! Finding NCCL, the library behind burn's all-reduce on CUDA, before a data-parallel run
//! starts, so that a missing NCCL is an error at start and not a panic at the first step.
//!
//! Why this exists: cubecl-cuda 0.11.3 enables its collectives only when cudarc 0.19.10 can
//! `dlopen` NCCL by one of its candidate names (`cudarc::get_lib_name_candidates("nccl")`:
//! `libnccl.so`, `libnccl.so.<CUDA major>`, `.12`, `.11`, …), and panics "Can't use
//! `all_reduce` on cuda, which has no transport between its devices" at the first collective
//! otherwise. NCCL's own soname is `libnccl.so.2`, which cudarc does not try, and the pip
//! wheel that most CUDA machines have (`nvidia-nccl-cu12`/`-cu13`, a PyTorch dependency)
//! ships only that file, in `site-packages/nvidia/nccl/lib`, off the library path.
//! `../shared/notes/distributed-training.md` §1.5 has the sources.
//!
//! What it does: [`NcclSearch`] looks, in order, at
//! 1. `LMTRAIN_NCCL`: a library file or a directory holding one (when set, nothing else);
//! 2. the directories of `LD_LIBRARY_PATH`;
//! 3. the pip wheel's `nvidia/nccl/lib` under the Python site-packages directories (those of
//!    `python3`'s `site` module, `$VIRTUAL_ENV`, `$CONDA_PREFIX`, `/usr/local/lib/python3*`,
//!    `~/.local/lib/python3*`, `/opt/conda`);
//! 4. the system's library directories (`/usr/lib/x86_64-linux-gnu`, `/usr/local/cuda/lib64`,
//!    …).
//!
//! With the `cuda` feature, [`ensure_loadable`] then makes the found file loadable under a
//! name cudarc tries: a `libnccl.so` symbolic link to it in a cache directory, put in front of
//! `LD_LIBRARY_PATH`. The dynamic loader reads `LD_LIBRARY_PATH` once, when a process starts,
//! so lmtrain starts itself again (`exec`, same arguments) with it set; the guard variable
//! `LMTRAIN_NCCL_REEXEC` stops a second attempt. This runs before the run directory exists.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The environment variable naming NCCL's library (a file) or its directory.
pub const ENV_NCCL: &str = "LMTRAIN_NCCL";

/// Set in the environment of the re-executed process (see the module docs).
pub const ENV_REEXEC: &str = "LMTRAIN_NCCL_REEXEC";

/// An NCCL library file found by [`NcclSearch::find`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundNccl {
    /// The file (`libnccl.so` or `libnccl.so.N…`).
    pub path: PathBuf,
    /// Where it was found, for the log: "LMTRAIN_NCCL", "LD_LIBRARY_PATH", "the pip wheel
    /// nvidia-nccl" or "the system library directories".
    pub source: &'static str,
}

/// Where to look for NCCL; [`NcclSearch::from_env`] fills it from the process's environment,
/// tests fill it by hand.
#[derive(Clone, Debug, Default)]
pub struct NcclSearch {
    /// `LMTRAIN_NCCL`, when set.
    pub explicit: Option<PathBuf>,
    pub ld_library_path: Vec<PathBuf>,
    /// Python site-packages directories (each may hold `nvidia/nccl/lib`).
    pub site_packages: Vec<PathBuf>,
    pub system_dirs: Vec<PathBuf>,
}

/// NCCL's file names, the one cudarc can load first, then the versioned sonames.
fn is_nccl_name(name: &str) -> Option<u32> {
    if name == "libnccl.so" {
        return Some(0);
    }
    let rest = name.strip_prefix("libnccl.so.")?;
    // libnccl.so.2, libnccl.so.2.21.5: digits and dots only.
    (!rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then_some(1 + rest.matches('.').count() as u32)
}

/// The NCCL library in `dir`, preferring `libnccl.so`, then the shortest versioned name
/// (`libnccl.so.2` before `libnccl.so.2.21.5`).
fn nccl_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut best: Option<(u32, String, PathBuf)> = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rank) = is_nccl_name(&name) else {
            continue;
        };
        let path = e.path();
        // A dangling link is not a library.
        if !path.is_file() {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(r, n, _)| (rank, &name) < (*r, n))
        {
            best = Some((rank, name, path));
        }
    }
    best.map(|(_, _, p)| p)
}

/// `pattern`'s matches (a glob), in order; an unreadable pattern gives none.
fn globbed(pattern: &str) -> Vec<PathBuf> {
    glob::glob(pattern)
        .map(|paths| paths.flatten().collect())
        .unwrap_or_default()
}

impl NcclSearch {
    /// The search the running process would do: its environment, `python3`'s site-packages
    /// directories (asked of `python3` itself; skipped when there is none) and the usual
    /// install locations.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let ld_library_path = var("LD_LIBRARY_PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        let mut site = python_site_packages();
        for prefix in ["VIRTUAL_ENV", "CONDA_PREFIX"]
            .iter()
            .filter_map(|k| var(k))
        {
            let p = PathBuf::from(prefix);
            site.extend(globbed(&format!(
                "{}/lib/python3*/site-packages",
                p.display()
            )));
        }
        let mut patterns = vec![
            "/usr/local/lib/python3*/dist-packages".to_string(),
            "/usr/local/lib/python3*/site-packages".into(),
            "/usr/lib/python3/dist-packages".into(),
            "/opt/conda/lib/python3*/site-packages".into(),
        ];
        if let Some(home) = var("HOME") {
            patterns.push(format!(
                "{}/.local/lib/python3*/site-packages",
                Path::new(&home).display()
            ));
        }
        for p in patterns {
            site.extend(globbed(&p));
        }
        let mut seen = std::collections::HashSet::new();
        site.retain(|p| seen.insert(p.clone()));
        Self {
            explicit: var(ENV_NCCL).map(PathBuf::from),
            ld_library_path,
            site_packages: site,
            system_dirs: [
                "/usr/lib/x86_64-linux-gnu",
                "/lib/x86_64-linux-gnu",
                "/usr/lib64",
                "/usr/local/cuda/lib64",
                "/usr/local/cuda/targets/x86_64-linux/lib",
                "/usr/local/nccl/lib",
                "/usr/local/lib",
                "/usr/lib",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
        }
    }

    /// The first NCCL library in the search order of the module docs.
    ///
    /// # Errors
    /// `LMTRAIN_NCCL` set to something that is not an NCCL library or a directory holding one;
    /// or no NCCL anywhere. Both name what was searched and how to install NCCL.
    pub fn find(&self) -> Result<FoundNccl> {
        if let Some(p) = &self.explicit {
            let file = if p.is_dir() {
                nccl_in(p)
            } else {
                p.is_file().then(|| p.clone())
            };
            return match file {
                Some(path) => Ok(FoundNccl {
                    path,
                    source: "LMTRAIN_NCCL",
                }),
                None => bail!(
                    "{ENV_NCCL}={} is neither an NCCL library file nor a directory holding libnccl.so or libnccl.so.2; point it at one (e.g. …/site-packages/nvidia/nccl/lib/libnccl.so.2), or unset it to search the usual places",
                    p.display()
                ),
            };
        }
        let wheel_dirs: Vec<PathBuf> = self
            .site_packages
            .iter()
            .map(|s| s.join("nvidia/nccl/lib"))
            .collect();
        for (dirs, source) in [
            (&self.ld_library_path, "LD_LIBRARY_PATH"),
            (&wheel_dirs, "the pip wheel nvidia-nccl"),
            (&self.system_dirs, "the system library directories"),
        ] {
            if let Some(path) = dirs.iter().find_map(|d| nccl_in(d)) {
                return Ok(FoundNccl { path, source });
            }
        }
        let list = list_dirs;
        bail!(
            "NCCL not found: data-parallel training on several CUDA devices all-reduces through NCCL (libnccl.so or libnccl.so.2), and none was in LD_LIBRARY_PATH ({}), the pip wheel directories ({}) or the system library directories ({}). Install it (`pip install nvidia-nccl-cu12`, or -cu13 for CUDA 13; or the distribution's libnccl2 package), or set {ENV_NCCL} to the library file or its directory",
            list(&self.ld_library_path),
            list(&wheel_dirs),
            list(&self.system_dirs)
        )
    }
}

/// Directories for an error message: comma-separated, or "none".
pub fn list_dirs(v: &[PathBuf]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The site-packages directories of `python3` (and of `python`), by asking its `site`
/// module; none when neither runs.
fn python_site_packages() -> Vec<PathBuf> {
    const CODE: &str =
        "import site\nfor p in site.getsitepackages() + [site.getusersitepackages()]: print(p)";
    for exe in ["python3", "python"] {
        let out = std::process::Command::new(exe)
            .args(["-c", CODE])
            .stderr(std::process::Stdio::null())
            .output();
        if let Ok(out) = out {
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(PathBuf::from)
                    .collect();
            }
        }
    }
    Vec::new()
}

/// A directory holding `libnccl.so`, a symbolic link to `found`: under
/// `$XDG_CACHE_HOME/lmtrain/nccl/` (default `~/.cache`), or the temporary directory when that
/// cannot be written. The link is replaced atomically (made under another name, renamed).
///
/// # Errors
/// Neither directory can be written.
pub fn link_dir(found: &Path) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let key = format!("{:x}", Sha256::digest(found.as_os_str().as_encoded_bytes()));
    let key = &key[..16];
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let mut errors = Vec::new();
    for base in cache
        .map(|c| c.join("lmtrain/nccl"))
        .into_iter()
        .chain(std::iter::once(std::env::temp_dir().join("lmtrain-nccl")))
    {
        let dir = base.join(key);
        match make_link(&dir, found) {
            Ok(()) => return Ok(dir),
            Err(e) => errors.push(format!("{}: {e}", dir.display())),
        }
    }
    bail!(
        "cannot make a libnccl.so link to {} ({}); set LD_LIBRARY_PATH to a directory holding one yourself",
        found.display(),
        errors.join("; ")
    )
}

fn make_link(dir: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let link = dir.join("libnccl.so");
    if std::fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let tmp = dir.join(format!("libnccl.so.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, &link)
}

/// `LD_LIBRARY_PATH` with `dir` in front.
pub fn prepend_library_path(dir: &Path, old: Option<OsString>) -> Result<OsString> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(old) = old {
        dirs.extend(std::env::split_paths(&old));
    }
    Ok(std::env::join_paths(dirs)?)
}

/// Makes NCCL loadable for burn's all-reduce, or fails with what to do. Returns a line for
/// the log when NCCL loads; may start the process again with `LD_LIBRARY_PATH` extended (see
/// the module docs), in which case it does not return.
///
/// # Errors
/// No NCCL found ([`NcclSearch::find`]); or one found that does not load even from the
/// library path (a broken or incompatible file).
#[cfg(feature = "cuda")]
pub fn ensure_loadable() -> Result<String> {
    use std::os::unix::process::CommandExt;
    // SAFETY: dlopen of NCCL, as cubecl-cuda itself does at client start; the library's
    // initialisers have no preconditions.
    if unsafe { cudarc::nccl::sys::is_culib_present() } {
        let how = if std::env::var_os(ENV_REEXEC).is_some() {
            "through the libnccl.so link lmtrain put in front of LD_LIBRARY_PATH"
        } else {
            "by cudarc's own library names"
        };
        return Ok(format!("NCCL: loaded {how}"));
    }
    let found = NcclSearch::from_env().find()?;
    if std::env::var_os(ENV_REEXEC).is_some() {
        bail!(
            "NCCL at {} (found in {}) does not load, even as libnccl.so in front of LD_LIBRARY_PATH: the file is broken or built for another CUDA; reinstall it, or set {ENV_NCCL} to another copy",
            found.path.display(),
            found.source
        );
    }
    let dir = link_dir(&found.path)?;
    let path = prepend_library_path(&dir, std::env::var_os("LD_LIBRARY_PATH"))?;
    eprintln!(
        "NCCL: {} (from {}) is not under a name cudarc loads; starting again with {}/libnccl.so linked to it in front of LD_LIBRARY_PATH",
        found.path.display(),
        found.source,
        dir.display()
    );
    let exe = std::env::current_exe()?;
    let err = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env("LD_LIBRARY_PATH", path)
        .env(ENV_REEXEC, "1")
        .exec();
    bail!("cannot start {} again: {err}", exe.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"not really a library").unwrap();
    }

    /// Only libnccl.so.2 in a pip wheel's directory: found there, after an empty
    /// LD_LIBRARY_PATH directory.
    #[test]
    fn the_pip_wheel_soname_is_found() {
        let d = tempfile::tempdir().unwrap();
        let site = d.path().join("site-packages");
        let lib = site.join("nvidia/nccl/lib/libnccl.so.2");
        touch(&lib);
        touch(&site.join("nvidia/nccl/lib/libnccl.so.2.21.5"));
        touch(&site.join("nvidia/nccl/lib/libnccl-net.so"));
        let s = NcclSearch {
            ld_library_path: vec![d.path().join("empty")],
            site_packages: vec![d.path().join("other"), site],
            ..Default::default()
        };
        let f = s.find().unwrap();
        assert_eq!(f.path, lib);
        assert_eq!(f.source, "the pip wheel nvidia-nccl");
    }

    /// LD_LIBRARY_PATH comes before the wheel, libnccl.so before a versioned name, and
    /// LMTRAIN_NCCL before everything (a file or a directory).
    #[test]
    fn the_search_order_holds() {
        let d = tempfile::tempdir().unwrap();
        let ld = d.path().join("ld");
        touch(&ld.join("libnccl.so.2"));
        touch(&ld.join("libnccl.so"));
        let site = d.path().join("site");
        touch(&site.join("nvidia/nccl/lib/libnccl.so.2"));
        let mut s = NcclSearch {
            ld_library_path: vec![ld.clone()],
            site_packages: vec![site.clone()],
            system_dirs: vec![ld.clone()],
            ..Default::default()
        };
        assert_eq!(s.find().unwrap().path, ld.join("libnccl.so"));
        assert_eq!(s.find().unwrap().source, "LD_LIBRARY_PATH");
        s.explicit = Some(site.join("nvidia/nccl/lib"));
        assert_eq!(
            s.find().unwrap().path,
            site.join("nvidia/nccl/lib/libnccl.so.2")
        );
        s.explicit = Some(ld.join("libnccl.so.2"));
        assert_eq!(s.find().unwrap().path, ld.join("libnccl.so.2"));
        assert_eq!(s.find().unwrap().source, "LMTRAIN_NCCL");
    }

    /// Nothing found: the error names the places searched and the fixes. A wrong
    /// LMTRAIN_NCCL is refused rather than searched around.
    #[test]
    fn a_missing_nccl_says_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("ld/libcuda.so.1"));
        let s = NcclSearch {
            ld_library_path: vec![d.path().join("ld")],
            site_packages: vec![d.path().join("site")],
            system_dirs: vec![d.path().join("sys")],
            ..Default::default()
        };
        let e = s.find().unwrap_err().to_string();
        for want in [
            "NCCL not found",
            "nvidia-nccl-cu12",
            "LMTRAIN_NCCL",
            "site/nvidia/nccl/lib",
        ] {
            assert!(e.contains(want), "{want:?} missing from: {e}");
        }
        let s = NcclSearch {
            explicit: Some(d.path().join("ld")),
            ..s
        };
        let e = s.find().unwrap_err().to_string();
        assert!(e.contains("LMTRAIN_NCCL=") && e.contains("neither"), "{e}");
    }

    /// The link points at the found file, is made again idempotently, and the library path
    /// gets its directory in front.
    #[test]
    fn the_link_directory_holds_libnccl_so() {
        let d = tempfile::tempdir().unwrap();
        let lib = d.path().join("wheel/libnccl.so.2");
        touch(&lib);
        let dir = d.path().join("cache/x");
        make_link(&dir, &lib).unwrap();
        make_link(&dir, &lib).unwrap();
        assert_eq!(std::fs::read_link(dir.join("libnccl.so")).unwrap(), lib);
        assert_eq!(
            std::fs::read(dir.join("libnccl.so")).unwrap(),
            b"not really a library"
        );
        let p = prepend_library_path(&dir, Some("/a:/b".into())).unwrap();
        assert_eq!(p, OsString::from(format!("{}:/a:/b", dir.display())));
    }

    #[test]
    fn names() {
        assert_eq!(is_nccl_name("libnccl.so"), Some(0));
        assert_eq!(is_nccl_name("libnccl.so.2"), Some(1));
        assert_eq!(is_nccl_name("libnccl.so.2.21.5"), Some(3));
        assert_eq!(is_nccl_name("libnccl-net.so"), None);
        assert_eq!(is_nccl_name("libnccl.so.bak"), None);
        assert_eq!(is_nccl_name("libnccl_static.a"), None);
    }
}
