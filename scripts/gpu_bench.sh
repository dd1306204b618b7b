#!/usr/bin/env bash
# lmtrain's training step against the fixed PyTorch reference, in one call on one machine.
#
#   scripts/gpu_bench.sh            # configs A and B: lmtrain plain f32 with and without clip+EMA,
#                                   # lmtrain with BEST_FLAGS; PyTorch eager bf16, eager f32,
#                                   # compile bf16
#   scripts/gpu_bench.sh --quick    # A and B: lmtrain plain f32 and BEST_FLAGS, PyTorch eager bf16
#   scripts/gpu_bench.sh --cpu      # a small shape on the CPU (lmtrain flex vs PyTorch eager f32),
#                                   # to check the pipeline on a machine without a GPU
#
# Environment: LMTRAIN (binary; default target/release/lmtrain), TORCH_BENCH (reference script;
# default ../shared/bench/torch_gpt_bench.py), PYTHON (default python3), STEPS, WARMUP,
# BEST_FLAGS (lmtrain bench flags of its best variant; default "--fused --bf16-matmuls" on the GPU,
# "--fused" with --cpu; empty to skip).
# Prints every RESULT line, then per config a LOSSCHECK line (the best variant's last loss
# against plain f32's at the same step; the target is within 2%) and a BEST line (which lmtrain
# line is faster), and last one RATIO line per config, from the faster lmtrain line:
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
# bf16 matmuls are the GPU's lever (tensor cores); the CPU backend gains nothing from them.
if [ "$mode" = cpu ]; then
  BEST_FLAGS="${BEST_FLAGS---fused}"
else
  BEST_FLAGS="${BEST_FLAGS---fused --bf16-matmuls}"
fi
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
    [ -n "$BEST_FLAGS" ] && run "$c lmtrain $BEST_FLAGS" "$LMTRAIN" bench $shape --steps "$STEPS" --warmup-steps "$WARMUP" --device cpu --no-clip-ema-line --label "$c-best" $BEST_FLAGS
    run "$c torch eager f32" "$PYTHON" "$TORCH_BENCH" --backend cpu --dtype f32 $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-eager-f32"
    continue
  fi
  extra=""; [ "$mode" = quick ] && extra="--no-clip-ema-line"
  run "$c lmtrain" "$LMTRAIN" bench $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c" $extra
  [ -n "$BEST_FLAGS" ] && run "$c lmtrain $BEST_FLAGS" "$LMTRAIN" bench $shape --steps "$STEPS" --warmup-steps "$WARMUP" --no-clip-ema-line --label "$c-best" $BEST_FLAGS
  run "$c torch eager bf16" "$PYTHON" "$TORCH_BENCH" --dtype bf16 $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-eager-bf16"
  if [ "$mode" = full ]; then
    run "$c torch eager f32" "$PYTHON" "$TORCH_BENCH" --dtype f32 $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-eager-f32"
    run "$c torch compile bf16" "$PYTHON" "$TORCH_BENCH" --dtype bf16 --compile $shape --steps "$STEPS" --warmup-steps "$WARMUP" --label "$c-torch-compile-bf16"
  fi
done

# The ratio lines come last: lmtrain (clip/EMA off, as the reference) over PyTorch eager
# (bf16 on a GPU; f32 on the CPU, where bf16 autocast is not what a user would run).
field() { # impl label key: the value of key in the first RESULT line of impl with that label
  grep "^RESULT impl=$1 " "$results" | grep " label=$2 " | head -n1 | sed -n "s/.* $3=\([0-9.]*\).*/\1/p"
}
tok() { field "$1" "$2" tokens_per_s; }
for c in "${configs[@]}"; do
  ref_label="$c-torch-eager-bf16"; ref_key=torch_eager_bf16_tok_s
  [ "$mode" = cpu ] && { ref_label="$c-torch-eager-f32"; ref_key=torch_eager_f32_tok_s; }
  l=$(tok lmtrain "$c"); t=$(tok torch "$ref_label")
  b=$(tok lmtrain "$c-best")
  if [ -n "$b" ] && [ -n "$l" ]; then
    lp=$(field lmtrain "$c" loss_last); lb=$(field lmtrain "$c-best" loss_last)
    awk -v c="$c" -v f="$BEST_FLAGS" -v a="$lp" -v b="$lb" 'BEGIN {
      r = (b - a) / a; if (r < 0) r = -r
      printf "LOSSCHECK config=%s flags=\"%s\" f32_loss_last=%s best_loss_last=%s rel_diff=%.4f %s\n", c, f, a, b, r, (r <= 0.02 ? "ok" : "OVER_2%") }'
    if awk -v a="$b" -v b="$l" 'BEGIN { exit !(a > b) }'; then
      echo "BEST config=$c lmtrain_line=\"$BEST_FLAGS\" tok_s=$b (plain f32 $l)"; l=$b
    else
      echo "BEST config=$c lmtrain_line=plain_f32 tok_s=$l ($BEST_FLAGS: $b)"
    fi
  fi
  if [ -n "$l" ] && [ -n "$t" ]; then
    r=$(awk -v a="$l" -v b="$t" 'BEGIN { printf "%.3f", a / b }')
    echo "RATIO config=$c card=$card lmtrain_tok_s=$l $ref_key=$t ratio=$r"
  else
    echo "RATIO config=$c card=$card missing=1 (a run failed; see above)"
  fi
done
rm -f "$results"
