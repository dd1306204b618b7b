#!/usr/bin/env bash
# lmtrain's training step against the fixed PyTorch reference, in one call on one machine.
#
#   scripts/gpu_bench.sh            # configs A and B: lmtrain f32 (its best dtype today) with and
#                                   # without clip+EMA; PyTorch eager bf16, eager f32, compile bf16
#   scripts/gpu_bench.sh --quick    # A and B: lmtrain f32 and PyTorch eager bf16 only
#   scripts/gpu_bench.sh --cpu      # a small shape on the CPU (lmtrain flex vs PyTorch eager f32),
#                                   # to check the pipeline on a machine without a GPU
#
# Environment: LMTRAIN (binary; default target/release/lmtrain), TORCH_BENCH (reference script;
# default ../shared/bench/torch_gpt_bench.py), PYTHON (default python3), STEPS, WARMUP.
# Prints every RESULT line, then one RATIO line per config last:
#   RATIO config=A card=<name> lmtrain_tok_s=<n> torch_eager_bf16_tok_s=<n> ratio=<lmtrain/torch>
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
  --quick) mode=quick ;;
  --cpu) mode=cpu ;;
  "") ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac

LMTRAIN="${LMTRAIN:-target/release/lmtrain}"
TORCH_BENCH="${TORCH_BENCH:-../shared/bench/torch_gpt_bench.py}"
PYTHON="${PYTHON:-python3}"
STEPS="${STEPS:-30}"
WARMUP="${WARMUP:-20}"
for f in "$LMTRAIN" "$TORCH_BENCH"; do
  [ -e "$f" ] || { echo "gpu_bench: $f not found (set LMTRAIN / TORCH_BENCH)" >&2; exit 1; }
done

if [ "$mode" = cpu ]; then
  card="cpu-$(nproc)cores"
  configs=(T)
else
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1 | tr ' ' '_')
  configs=(A B)
fi

shape_args() { # the reference's flags for a config name
  case "$1" in
    A) echo "--layers 6 --d-model 384 --heads 6 --seq 256 --batch 64 --vocab 8192" ;;
    B) echo "--layers 12 --d-model 768 --heads 12 --seq 1024 --batch 16 --vocab 50304" ;;
    T) echo "--layers 2 --d-model 64 --heads 4 --seq 64 --batch 8 --vocab 512" ;;
  esac
}

results=$(mktemp)
run() { # label, command...
  local label=$1; shift
  echo "== $label: $*" >&2
  # RESULT lines go to stdout; the rest of the program's output (the reference's peak memory
  # and timing lines too) to stderr, indented.
  local out
  out=$(mktemp)
  "$@" >"$out" 2> >(sed 's/^/   /' >&2) || true
  { grep -v '^RESULT' "$out" || true; } | sed 's/^/   /' >&2
  if grep '^RESULT' "$out"; then
    cat "$out" >>"$results"
  else
    echo "RESULT impl=failed label=$label" | tee -a "$results"
  fi
  rm -f "$out"
}

for c in "${configs[@]}"; do
  shape=$(shape_args "$c")
  # shellcheck disable=SC2086
  if [ "$mode" = cpu ]; then
    run "$c lmtrain" "$LMTRAIN" bench $shape --steps "$STEPS" --warmup-steps "$WARMUP" --device cpu --label "$c"
    run "$c torch eager f32" "$PYTHON" "$TORCH_BENCH" --backend cpu --dtype f32 $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-eager-f32"
    continue
  fi
  extra=""; [ "$mode" = quick ] && extra="--no-clip-ema-line"
  run "$c lmtrain" "$LMTRAIN" bench $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c" $extra
  run "$c torch eager bf16" "$PYTHON" "$TORCH_BENCH" --dtype bf16 $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-eager-bf16"
  if [ "$mode" = full ]; then
    run "$c torch eager f32" "$PYTHON" "$TORCH_BENCH" --dtype f32 $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-eager-f32"
    run "$c torch compile bf16" "$PYTHON" "$TORCH_BENCH" --dtype bf16 --compile $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-compile-bf16"
  fi
done

# The ratio lines come last: lmtrain (clip/EMA off, as the reference) over PyTorch eager
# (bf16 on a GPU; f32 on the CPU, where bf16 autocast is not what a user would run).
tok() { grep "^RESULT impl=$1 " "$results" | grep " label=$2 " | head -n1 | sed -n 's/.* tokens_per_s=\([0-9.]*\).*/\1/p'; }
for c in "${configs[@]}"; do
  ref_label="$c-torch-eager-bf16"; ref_key=torch_eager_bf16_tok_s
  [ "$mode" = cpu ] && { ref_label="$c-torch-eager-f32"; ref_key=torch_eager_f32_tok_s; }
  l=$(tok lmtrain "$c"); t=$(tok torch "$ref_label")
  if [ -n "$l" ] && [ -n "$t" ]; then
    r=$(awk -v a="$l" -v b="$t" 'BEGIN { printf "%.3f", a / b }')
    echo "RATIO config=$c card=$card lmtrain_tok_s=$l $ref_key=$t ratio=$r"
  else
    echo "RATIO config=$c card=$card missing=1 (a run failed; see above)"
  fi
done
rm -f "$results"
