//! Where the environments' model files are: third_party/mujoco/assets/ as scripts/install_mujoco.sh
//! installs it from Gymnasium's wheel, or `$LMTRAIN_MUJOCO_DIR/assets` when that is set (for a
//! binary moved away from its checkout).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Overrides the MuJoCo install directory (the one holding `assets/`).
pub const DIR_VAR: &str = "LMTRAIN_MUJOCO_DIR";

/// The MuJoCo install directory: `$LMTRAIN_MUJOCO_DIR`, else the checkout's third_party/mujoco.
pub fn mujoco_dir() -> PathBuf {
    match std::env::var_os(DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("third_party/mujoco"),
    }
}

/// The directory holding Gymnasium's model files.
pub fn model_dir() -> PathBuf {
    mujoco_dir().join("assets")
}

/// The path of model file `name` (e.g. `walker2d.xml`), or an error naming the file and the fix.
pub fn model_path(name: &str) -> Result<PathBuf> {
    let path = model_dir().join(name);
    if !path.is_file() {
        bail!(
            "MuJoCo model file {} is missing; install the models with scripts/install_mujoco.sh \
             (or point ${DIR_VAR} at a directory holding assets/{name})",
            path.display()
        );
    }
    Ok(path)
}
