#!/usr/bin/env bash
# SAC training speed on the CPU: lmtrain's SAC against a PyTorch reference (CleanRL's
# sac_continuous_action.py, restated in scripts/sac_bench_torch.py), on Walker2d-v4, one after the
# other, each with the same number of threads (OMP_NUM_THREADS = MKL_NUM_THREADS =
# RAYON_NUM_THREADS = --threads, default 2).
# Each side takes L uniform-random warm-up steps, then times a window of N steps of
# act + environment step + update, and prints
#   RESULT impl=<lmtrain|torch> env=... learning_starts=L steps=N seconds=S steps_per_s=X
# This script ends with one line:
#   SAC_RATIO env=Walker2d-v4 threads=T lmtrain_sps=<float> torch_sps=<float> ratio=<lmtrain/torch> cpu=<model>
# The CPU's model is part of the line: the ratio differs between machines (BENCHMARKS.md).
#
#   scripts/sac_bench.sh [--steps N] [--learning-starts L] [--seed S] [--threads T]
#                        (defaults 2000 5000 0 2)
#
# Needs target/release/lmtrain (scripts/setup.sh) and creates .venv-sac-bench/ (torch, Gymnasium,
# MuJoCo from PyPI; several GB the first time) through scripts/sac_bench_torch.py.
# LMTRAIN=path overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=2000
LEARNING_STARTS=5000
SEED=0
THREADS=2
ENV_ID=Walker2d-v4
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --learning-starts) LEARNING_STARTS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "sac_bench: unknown argument '$1' (use --steps N, --learning-starts L, --seed S, --threads T)" >&2; exit 2 ;;
  esac
done

[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "sac_bench: --threads takes a whole number ≥ 1, got '$THREADS'" >&2; exit 2; }
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
LMTRAIN=${LMTRAIN:-target/release/lmtrain}
if [ ! -x "$LMTRAIN" ]; then
  echo "sac_bench: $LMTRAIN is missing; run scripts/setup.sh (or cargo build --release)" >&2
  exit 1
fi

# The venv first (a first install downloads a lot), so neither timed run shares the machine with it.
python3 scripts/sac_bench_torch.py --venv-only

LOG_DIR=$(mktemp -d)
trap 'rm -rf "$LOG_DIR"' EXIT

# OpenMP threads spin while they wait, so with the cores busy elsewhere a 2-thread torch run slows
# by 10x or more (measured with a build on both cores: 5.5 steps/s on 2 threads, 72 on 1); the ratio means
# something only on an otherwise idle machine.
check_idle() {
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
    echo "sac_bench: WARNING: load average $load before the $1 run; other work skews this benchmark" >&2
  fi
}

rate() { sed -n 's/^RESULT .* steps_per_s=\([0-9.eE+-]*\).*/\1/p' "$1" | tail -n 1; }
# The RESULT line must be for the window asked for (catches an interface mismatch).
window_ok() {
  grep -q " env=$ENV_ID .*learning_starts=$LEARNING_STARTS steps=$STEPS " "$1" \
    || { echo "sac_bench: $2's RESULT line is not for env=$ENV_ID learning_starts=$LEARNING_STARTS steps=$STEPS: $(cat "$1")" >&2; exit 1; }
}

echo "sac_bench: lmtrain ($LMTRAIN), $ENV_ID, $LEARNING_STARTS random steps then $STEPS timed" >&2
check_idle lmtrain
status=0
"$LMTRAIN" expert bench --env "$ENV_ID" --learning-starts "$LEARNING_STARTS" --steps "$STEPS" --seed "$SEED" \
  | tee "$LOG_DIR/lmtrain.txt" || status=$?
if [ "$status" -ne 0 ]; then
  echo "sac_bench: '$LMTRAIN expert bench' failed (exit $status)" >&2
  exit 1
fi
grep '^RESULT impl=lmtrain ' "$LOG_DIR/lmtrain.txt" >"$LOG_DIR/lmtrain.result" || true
LMTRAIN_SPS=$(rate "$LOG_DIR/lmtrain.result")
if [ -z "$LMTRAIN_SPS" ]; then
  echo "sac_bench: no 'RESULT impl=lmtrain ... steps_per_s=X' line from '$LMTRAIN expert bench'" >&2
  exit 1
fi
window_ok "$LOG_DIR/lmtrain.result" lmtrain

echo "sac_bench: torch (scripts/sac_bench_torch.py), same window" >&2
check_idle torch
status=0
python3 scripts/sac_bench_torch.py --env "$ENV_ID" --learning-starts "$LEARNING_STARTS" --steps "$STEPS" \
  --seed "$SEED" | tee "$LOG_DIR/torch.txt" || status=$?
if [ "$status" -ne 0 ]; then
  echo "sac_bench: scripts/sac_bench_torch.py failed (exit $status)" >&2
  exit 1
fi
grep '^RESULT impl=torch ' "$LOG_DIR/torch.txt" >"$LOG_DIR/torch.result" || true
TORCH_SPS=$(rate "$LOG_DIR/torch.result")
if [ -z "$TORCH_SPS" ]; then
  echo "sac_bench: no 'RESULT impl=torch ... steps_per_s=X' line from scripts/sac_bench_torch.py" >&2
  exit 1
fi
window_ok "$LOG_DIR/torch.result" torch
CPU_MODEL=$(awk -F': *' '/^model name/ { gsub(/ +/, "_", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
awk -v env="$ENV_ID" -v t="$THREADS" -v a="$LMTRAIN_SPS" -v b="$TORCH_SPS" -v cpu="${CPU_MODEL:-unknown}" \
  'BEGIN { printf "SAC_RATIO env=%s threads=%s lmtrain_sps=%s torch_sps=%s ratio=%.3f cpu=%s\n", env, t, a, b, a / b, cpu }'
