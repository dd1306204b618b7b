#!/usr/bin/env bash
# Sets lmtrain up on a fresh machine, idempotently:
#   1. builds the release binary (burn with its CUDA backend compiled in; no GPU or CUDA toolkit
#      is needed to build, and the binary falls back to the CPU when there is no GPU);
#   2. writes the offline default corpus (synthetic stories with checkable constraints) to
#      data/synth/, which configs/quickstart.toml trains on;
#   3. collects the shipped Walker2d and Hopper experts' datasets into data/bc/<env>/.
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
# The behaviour-cloning datasets of the shipped experts (100 train and 10 validation episodes
# each, deterministic; seconds), when the experts are in data/experts/.
for env in walker2d hopper; do
  expert="data/experts/$env.safetensors"
  if [ ! -f "$expert" ]; then
    echo "setup: $expert is not shipped yet, so data/bc/$env/ is not collected" >&2
  elif [ -f "data/bc/$env/dataset.json" ]; then
    echo "setup: data/bc/$env already holds the expert dataset" >&2
  else
    target/release/lmtrain expert collect --expert "$expert" --episodes 100 --val-episodes 10 --seed 0 --out "data/bc/$env"
  fi
done
echo "setup: done. Train with: target/release/lmtrain --config configs/quickstart.toml" >&2
