#!/usr/bin/env bash
# One GPU session's measurements, in priority order, inside a fixed time budget (the device
# tool lends 15 minutes per session, start-up included). Run on the GPU machine through the
# runner that scripts/package_device.sh writes:
#
#   bash device/run.sh bash scripts/device_session.sh OUT_DIR [BUDGET_SECONDS]
#
# Steps (each skipped when too little of the budget is left, each under its own timeout):
#   gemm-table: scripts/gemm_bench.sh --shape b (config B's linear GEMMs, burn f32/bf16 and the
#      cuBLASLt op beside PyTorch TF32/bf16, TFLOP/s and errors; GEMM_RATIO and GEMM_ROUTE
#      lines): issue 18's deciding table
#   0. lmtrain check-ops --shapes gpu: every fused op against burn's plain ops on the GPU (the
#      "linear bf16" lines run cuBLASLt on CUDA)
#      fixture-cublaslt: lmtrain check-fixture --matmul cublaslt: the GPT with cuBLASLt linears
#      against PyTorch's fixture, bf16 bounds
#      loss-band-A: scripts/loss_band.sh --config A --steps 300: the cuBLASLt run's loss curve
#      against f32's, within 2%
#      nccl-smoke: lmtrain check-nccl --devices 0 (≤ 60 s): NCCL found and loaded, a one-rank
#      communicator, the all-reduced mean, the data-parallel step against the single-device
#      step (bit for bit), and the all-reduce of 256 MiB timed (one rank: no traffic)
#   1. the card, and the data pipeline alone on all cores (lmtrain data bench)
#   2. lmtrain warmup for a TinyStories-class run (cold kernel cache)
#   3. that run for a few hundred steps with device = "auto" (warm cache: first-step time)
#   4. scripts/gpu_bench.sh --quick (lmtrain plain f32 and its best flags, BEST_FLAGS, vs PyTorch
#      eager bf16, configs A and B)
#   5. lmtrain bench on A and B with the speed switches combined, and with ALL_VARIANTS=1 each
#      alone (variants-A/B)
#   6. per-kernel profiles of one step of A and of B (lmtrain bench --profile), --fused (or
#      PROFILE_FLAGS) and plain (profile-fused-A, profile-fused-B, profile-A, profile-B); each
#      reads with scripts/profile_breakdown.py
#   7. scripts/gpu_bench.sh without --quick (also clip+EMA, PyTorch eager f32 and
#      torch.compile bf16), only when named in ONLY (gpu-bench-full)
#   8. lmtrain bench on A with --dtype flex32
# Everything lands in OUT_DIR: session.log (all output), the run's train.log, metrics.jsonl and
# generations.jsonl, profile-A.log, profile-B.log and kernel-cache.tar.xz (the filled cache, to
# carry to a fresh machine). Environment: LMTRAIN, TORCH_BENCH (set by device/run.sh),
# EXTRA_SET (more --set overrides for the run, e.g. device=cpu to rehearse on a CPU), RUN_STEPS,
# ONLY (space-separated step names to run, e.g. ONLY="profile-A profile-B" for a second call;
# gpu-bench-full runs only when named), CARRIED_CACHE (a kernel-cache .tar.xz from an earlier
# session, unpacked before anything runs). The next session's call (the carried cache holds the
# plain-op kernels of session 2's H200 run; the fused ops compile fresh):
#   CARRIED_CACHE=device/kernel-cache-h200.tar.xz \
#   ONLY="gemm-table check-ops fixture-cublaslt gpu-bench-quick loss-band-A profile-fused-B gpu-bench-full" \
#     bash device/run.sh bash scripts/device_session.sh $OUT 520
# (gpu-bench-quick's BEST_FLAGS default to "--fused --bf16-matmuls --matmul cublaslt"; PROFILE_FLAGS
# to "--fused", e.g. PROFILE_FLAGS="--fused --bf16-matmuls --matmul cublaslt" for the profile after
# the change.)
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: device_session.sh OUT_DIR [BUDGET_SECONDS]}
budget=${2:-540}
mkdir -p "$out"
out=$(cd "$out" && pwd)
LMTRAIN="${LMTRAIN:-target/release/lmtrain}"
here=$(pwd)
data="${DATA_DIR:-$here/device/data}"
export LMTRAIN_KERNEL_CACHE="${LMTRAIN_KERNEL_CACHE:-/tmp/lmtrain-kernels}"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
start=$(date +%s)
log="$out/session.log"
: >"$log"

say() { echo "[$(($(date +%s) - start))s] $*" | tee -a "$log"; }
# step NAME MIN_SECONDS TIMEOUT command...: runs it if MIN_SECONDS of the budget remain.
step() {
  local name=$1 need=$2 limit=$3; shift 3
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  if [ -z "${ONLY:-}" ] && [ "$name" = gpu-bench-full ]; then return 0; fi
  local left=$((budget - ($(date +%s) - start)))
  if [ "$left" -lt "$need" ]; then say "SKIP $name: ${left}s left, needs ${need}s"; return 0; fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "BEGIN $name (timeout ${limit}s): $*"
  local t0 rc
  t0=$(date +%s)
  timeout --signal=INT --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  say "END $name rc=$rc in $(($(date +%s) - t0))s"
}

# The run: configs/tinystories.toml on the carried sample shards, a few hundred steps, with
# evaluations often enough to see raw and EMA val losses and generations.
run_set=(
  --set "data.train_glob=\"$data/TinyStories/data/train-*.parquet\""
  --set "data.val_glob=\"$data/TinyStories/data/validation-*.parquet\""
  --set "tokenizer.path=\"$data/tokenizer-8192.json\""
  --set "train.out_dir=\"$out/runs\"" --set "train.run_name=\"tinystories-gpu\""
  --set "train.max_steps=${RUN_STEPS:-300}" --set train.log_every=25 --set optim.grad_accum=1
  --set schedule.warmup_steps=50 --set schedule.decay_steps=250 --set optim.lr=1e-3
  --set ema.burn_in=50 --set eval.val_every=50 --set eval.val_windows=64
  --set eval.generate_every=100 --set eval.num_prompts=2 --set eval.generate_tokens=256
  --set checkpoint.every=1000
)
for s in ${EXTRA_SET:-}; do run_set+=(--set "$s"); done

# A kernel cache carried from an earlier session: unpacked first, so that the run below measures
# the first step of a fresh machine with a warm cache.
if [ -n "${CARRIED_CACHE:-}" ]; then
  mkdir -p "$(dirname "$LMTRAIN_KERNEL_CACHE")"
  if tar -C "$(dirname "$LMTRAIN_KERNEL_CACHE")" -xJf "$CARRIED_CACHE" 2>>"$log"; then
    say "unpacked the carried kernel cache $CARRIED_CACHE ($(du -sh "$LMTRAIN_KERNEL_CACHE" | cut -f1))"
  else
    say "could not unpack $CARRIED_CACHE; continuing with a cold cache"
  fi
fi
say "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
say "cores: $(nproc); kernel cache: $LMTRAIN_KERNEL_CACHE"
say "cuBLASLt files: $(ls /usr/local/cuda/lib64/libcublasLt.so* /usr/local/cuda/targets/x86_64-linux/lib/libcublasLt.so* 2>/dev/null | tr '\n' ' ')"
step gemm-table 90 180 env LMTRAIN="$LMTRAIN" bash scripts/gemm_bench.sh --shape b --device cuda --reps 20
step check-ops 60 120 "$LMTRAIN" check-ops --shapes gpu
step fixture-cublaslt 20 60 "$LMTRAIN" check-fixture --device cuda --matmul cublaslt
step nccl-smoke 30 60 "$LMTRAIN" check-nccl --devices 0 --mib 256
step data-bench 60 45 "$LMTRAIN" data bench --config configs/tinystories.toml "${run_set[@]}" --windows 4000
step warmup 200 150 "$LMTRAIN" warmup --config configs/tinystories.toml "${run_set[@]}"
step train 150 170 "$LMTRAIN" --config configs/tinystories.toml "${run_set[@]}"
run_dir="$out/runs/tinystories-gpu"
if [ -d "$run_dir" ]; then
  for f in train.log metrics.jsonl generations.jsonl; do cp "$run_dir/$f" "$out/" 2>/dev/null; done
  rm -rf "$out/runs"
fi
step gpu-bench-quick 120 230 env STEPS=20 WARMUP=10 \
  BEST_FLAGS="${BEST_FLAGS:---fused --bf16-matmuls --matmul cublaslt}" bash scripts/gpu_bench.sh --quick
step loss-band-A 60 120 env LMTRAIN="$LMTRAIN" bash scripts/loss_band.sh --config A --steps 300 \
  --device cuda
# Issue 6's levers on A and B (same shapes, so much of the cache is warm). Each variant compiles
# its own kernels cold (30-90 s), so by default only the combinations that decide the ratio run;
# ALL_VARIANTS=1 adds each switch alone.
variant_flags=("--fused" "--bf16-matmuls" "--fused --bf16-matmuls" "--flash-attention"
  "--fused --flash-attention --bf16-matmuls" "--fused --matmul cublaslt"
  "--fused --bf16-matmuls --matmul cublaslt")
if [ -n "${ALL_VARIANTS:-}" ]; then
  variant_flags+=("--fused-attention" "--fused-layer-norm" "--fused-cross-entropy" "--fused-bias"
    "--gather-embedding")
fi
for c in A B; do
  for flags in "${variant_flags[@]}"; do
    # shellcheck disable=SC2086
    step "variants-$c" 40 120 "$LMTRAIN" bench --config "$c" --steps 20 --warmup-steps 10 \
      --no-clip-ema-line --label "$c${flags// /}" $flags
  done
done
# PROFILE_FLAGS (default --fused) picks the switches of the profile-fused-A/B steps, e.g. the
# fastest combination variants-A/B found: scripts/profile_breakdown.py reads any of them.
for c in A B; do
  # shellcheck disable=SC2086
  step "profile-fused-$c" 45 60 "$LMTRAIN" bench --config "$c" --steps 2 --warmup-steps 1 \
    --no-clip-ema-line ${PROFILE_FLAGS:---fused} --label "$c-fused-profile" \
    --profile "$out/profile-fused-$c.log"
done
for c in A B; do
  step "profile-$c" 45 60 "$LMTRAIN" bench --config "$c" --steps 2 --warmup-steps 1 \
    --no-clip-ema-line --label "$c-profile" --profile "$out/profile-$c.log"
done
step gpu-bench-full 200 400 env STEPS=20 WARMUP=10 bash scripts/gpu_bench.sh
step bench-A-flex32 45 90 "$LMTRAIN" bench --config A --steps 20 --warmup-steps 10 \
  --no-clip-ema-line --dtype flex32 --label A-flex32
tar -C "$(dirname "$LMTRAIN_KERNEL_CACHE")" -cJf "$out/kernel-cache.tar.xz" \
  "$(basename "$LMTRAIN_KERNEL_CACHE")" 2>>"$log" && say "kernel cache: $(du -sh "$LMTRAIN_KERNEL_CACHE" | cut -f1) ($(du -h "$out/kernel-cache.tar.xz" | cut -f1) packed)"
grep -E '^(CHECK|RESULT|LOSSCHECK|BEST|RATIO)' "$log"
say "done"
