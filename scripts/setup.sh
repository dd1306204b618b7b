#!/usr/bin/env bash
# Sets lmtrain up on a fresh machine, idempotently:
#   1. builds the release binary (burn with its CUDA backend compiled in; no GPU or CUDA toolkit
#      is needed to build, and the binary falls back to the CPU when there is no GPU);
#   2. writes the offline default corpus (synthetic stories with checkable constraints) to
#      data/synth/, which configs/quickstart.toml trains on.
# A clean build takes about 25 minutes on 2 cores; later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust 1.95 or newer (rustup), then rerun scripts/setup.sh" >&2
  exit 1
fi

# MuJoCo 3.17.0 and the environments' model files (from PyPI wheels) into third_party/mujoco/,
# which the default build links against (feature `mujoco`).
scripts/install_mujoco.sh

echo "setup: building target/release/lmtrain" >&2
cargo build --release

if [ -f data/synth/train-00000-of-00001.parquet ] && [ -f data/synth/validation-00000-of-00001.parquet ]; then
  echo "setup: data/synth already holds the synthetic corpus" >&2
else
  target/release/lmtrain data synth --out data/synth --stories 20000 --seed 0
fi
echo "setup: done. Train with: target/release/lmtrain --config configs/quickstart.toml" >&2
