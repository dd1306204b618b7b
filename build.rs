//! Records the git commit and the burn version for the log header of every run.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LMTRAIN_GIT_COMMIT={commit}");

    // The burn version actually resolved, read from Cargo.lock.
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut burn = "unknown".to_string();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"burn\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = ")) {
                burn = v.trim_matches('"').to_string();
            }
            break;
        }
    }
    println!("cargo:rustc-env=LMTRAIN_BURN_VERSION={burn}");
    // MuJoCo (feature `mujoco`): mujoco-rs links libmujoco from MUJOCO_DYNAMIC_LINK_DIR (set in
    // .cargo/config.toml) but records no run-time search path, so record it here: the binary and
    // the tests then run without LD_LIBRARY_PATH.
    if std::env::var_os("CARGO_FEATURE_MUJOCO").is_some() {
        if let Ok(dir) = std::env::var("MUJOCO_DYNAMIC_LINK_DIR") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
    println!("cargo:rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
