//! Where the GPU backend keeps its compiled kernels and autotune results.
//!
//! burn's CUDA backend (cubecl) compiles every kernel with NVRTC and benchmarks the candidates of
//! each tunable op the first time it meets a shape: 30–120 s before the first training step on a
//! fresh machine. cubecl can persist both (one database per environment), but by default it
//! caches no compiled kernels and puts its autotune results under the `target/` of whichever
//! Cargo project encloses the working directory — so the cache moves with `cd`. lmtrain instead
//! always uses one directory it names, with kernel caching on, so `lmtrain warmup` can fill it
//! ahead of a run and it can be carried to another machine with the same card and build.
//!
//! The directory is `$LMTRAIN_KERNEL_CACHE`, else `$XDG_CACHE_HOME/lmtrain/kernels`, else
//! `~/.cache/lmtrain/kernels`. A `cubecl.toml` found upward from the working directory and the
//! `CUBECL_*` environment variables still apply to everything else (autotune level, logging).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::profiling::ProfilingLogLevel;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The environment variable that names the cache directory.
pub const CACHE_ENV: &str = "LMTRAIN_KERNEL_CACHE";

/// The cache directory from the environment, without touching the file system.
pub fn cache_dir_from_env(
    lmtrain_cache: Option<String>,
    xdg_cache_home: Option<String>,
    home: Option<String>,
) -> PathBuf {
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(dir) = nonempty(lmtrain_cache) {
        return dir;
    }
    if let Some(base) = nonempty(xdg_cache_home) {
        return base.join("lmtrain").join("kernels");
    }
    match nonempty(home) {
        Some(home) => home.join(".cache").join("lmtrain").join("kernels"),
        // No home at all (a bare container): keep the cache beside the working directory.
        None => PathBuf::from(".lmtrain-kernels"),
    }
}

/// The cache directory this process uses.
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var(k).ok();
    cache_dir_from_env(var(CACHE_ENV), var("XDG_CACHE_HOME"), var("HOME"))
}

/// What [`configure`] set up.
#[derive(Clone, Debug)]
pub struct KernelCache {
    pub dir: PathBuf,
    /// False when something read the GPU runtime's config before lmtrain could set it (then
    /// cubecl's own defaults apply and the cache may be elsewhere).
    pub applied: bool,
}

impl KernelCache {
    /// One line for logs.
    pub fn describe(&self) -> String {
        if self.applied {
            format!(
                "kernel cache: {} (compiled kernels and autotune results; ${CACHE_ENV} moves it)",
                self.dir.display()
            )
        } else {
            "kernel cache: cubecl's defaults (its config was read before lmtrain could set it)"
                .into()
        }
    }
}

/// The first [`configure`]'s result: cubecl's config can be set once per process.
static CONFIGURED: std::sync::Mutex<Option<KernelCache>> = std::sync::Mutex::new(None);

/// Sets the GPU runtime's config before any device starts: kernel caching on, in [`cache_dir`].
/// With `profile_log`, every kernel launch is timed and written there (one line per kernel, then
/// a summary per device sync), for `lmtrain bench --profile`. Later calls in the same process
/// return the first call's result.
pub fn configure(profile_log: Option<&Path>) -> Result<KernelCache> {
    let mut done = CONFIGURED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = done.as_ref() {
        return Ok(k.clone());
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create the kernel cache directory {}; set {CACHE_ENV} to a writable directory",
            dir.display()
        )
    })?;
    // Absolute, so that the warm-up's scratch run and the log name the same place from any cwd.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.compilation.cache = true;
    config.environment.path = CacheConfig::Directory(dir.clone());
    if let Some(log) = profile_log {
        config.profiling.logger.level = ProfilingLogLevel::Basic;
        config.profiling.logger.file = Some(log.to_path_buf());
        config.profiling.logger.append = false;
        config.profiling.logger.stdout = false;
        config.profiling.logger.stderr = false;
    }
    let applied = CubeClRuntimeConfig::try_set(config);
    let k = KernelCache { dir, applied };
    *done = Some(k.clone());
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_prefers_the_explicit_variable_then_xdg_then_home() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            cache_dir_from_env(s("/x/k"), s("/xdg"), s("/home/u")),
            PathBuf::from("/x/k")
        );
        assert_eq!(
            cache_dir_from_env(None, s("/xdg"), s("/home/u")),
            PathBuf::from("/xdg/lmtrain/kernels")
        );
        assert_eq!(
            cache_dir_from_env(s(""), s(""), s("/home/u")),
            PathBuf::from("/home/u/.cache/lmtrain/kernels")
        );
        assert_eq!(
            cache_dir_from_env(None, None, None),
            PathBuf::from(".lmtrain-kernels")
        );
    }
}
