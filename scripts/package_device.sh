#!/usr/bin/env bash
# Prepares device/ (git-ignored) for a GPU machine that has no cargo and no ../shared:
# the stripped release binary compressed with xz, the sample parquet shards, the PyTorch
# reference, the sample's tokenizer and an unpacking runner. Carry it with the device tool
# (carry: ["device"]) and run e.g. `bash device/run.sh bash scripts/gpu_bench.sh --quick`, or
# a whole session's measurements: `bash device/run.sh bash scripts/device_session.sh $OUT`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
# A kernel cache brought back from an earlier GPU session (device/kernel-cache-*.tar.xz) is kept:
# it is what a fresh GPU machine needs for a warm first step.
keep=$(mktemp -d)
cp device/kernel-cache-*.tar.xz "$keep"/ 2>/dev/null || true
rm -rf device && mkdir -p device/data
cp "$keep"/*.tar.xz device/ 2>/dev/null || true
rm -rf "$keep"
strip -o device/lmtrain target/release/lmtrain
xz -9 -T2 -f device/lmtrain
cp ../shared/bench/torch_gpt_bench.py device/
cp -r ../shared/data/TinyStories device/data/
cp -r ../shared/data/wikipedia device/data/
# The sample's tokenizer, trained here so the GPU minutes go to the GPU (its sidecar fingerprints
# the shards by name and size, so it is reused there).
d=$(pwd)/device/data
target/release/lmtrain tokenizer --config configs/tinystories.toml \
  --set "data.train_glob=\"$d/TinyStories/data/train-*.parquet\"" \
  --set "data.val_glob=\"$d/TinyStories/data/validation-*.parquet\"" \
  --set "tokenizer.path=\"$d/tokenizer-8192.json\""
cat > device/run.sh <<'RUN'
#!/usr/bin/env bash
# Unpacks the binary once, points the scripts at the carried files, then runs "$@".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$here/lmtrain" ] || xz -dkf "$here/lmtrain.xz"
chmod +x "$here/lmtrain"
export LMTRAIN="$here/lmtrain" TORCH_BENCH="$here/torch_gpt_bench.py"
export CUDA_PATH="${CUDA_PATH:-/usr/local/cuda}"
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:/usr/local/cuda/targets/x86_64-linux/lib"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$@"
RUN
chmod +x device/run.sh
du -sh device/* >&2
