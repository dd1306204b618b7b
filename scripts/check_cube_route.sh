#!/usr/bin/env bash
# Checks lmtrain's cubecl route (the code path the CUDA backend runs) on a machine without a GPU:
# cubecl kernels compiled to WGSL run on Mesa's lavapipe through burn's wgpu backend.
#
#   1. installs lavapipe if needed (scripts/install_lavapipe.sh) and builds lmtrain with
#      `--features wgpu` (the default features plus wgpu) into target/release/lmtrain-wgpu;
#   2. `lmtrain check-ops --device wgpu`: each fused op's cubecl route against burn's plain ops,
#      output and gradients (the bf16 variant is skipped: WGSL has no bf16);
#   3. the GPT training step of `lmtrain bench` on a small shape, plain and with each compute
#      switch (256 tokens a step, so the bias gradients take the two-stage sum), on the wgpu
#      device and on the CPU (burn flex), from the same seed: the two
#      backends share no kernel code, so equal losses after the warm-up and timed steps check
#      the whole step (forward, backward, AdamW, clipping and EMA) on the cubecl route;
#   4. `lmtrain bench --profile` of the same step per variant, read by
#      scripts/profile_breakdown.py: the log must split into forward, backward and update, and
#      the script must find the layers and their linear matmuls (4 a block forward, 8
#      backward, the head's 3), so a GPU session's profile is known to parse before it runs.
#
# Prints `ROUTE variant=… cpu_loss_last=… wgpu_loss_last=… rel_diff=… ok|FAIL` per variant and
# line (clipping and EMA off, then on), `PROFILE variant=… layers=… linear_matmuls=… ok|FAIL`
# per variant, and exits non-zero if a check fails. Timing figures from
# lavapipe mean nothing for a GPU and are not printed. The first run autotunes every kernel on
# the CPU (several minutes); the kernel cache ($LMTRAIN_KERNEL_CACHE) makes later runs fast.
set -euo pipefail
cd "$(dirname "$0")/.."

# Observed: ~1e-7 (cubecl on lavapipe vs flex after 7 AdamW steps, session 5); a wrong gradient
# moves the loss far more.
MAX_REL=${MAX_REL:-1e-5}
LAYERS=2
MODEL=(--layers "$LAYERS" --d-model 64 --heads 4 --seq 32 --batch 8 --vocab 256)
SHAPE=("${MODEL[@]}" --steps 5 --warmup-steps 2)
# ROUTE_SET=all (default): plain, each switch alone, and combined; ROUTE_SET=combined: plain,
# --fused and --fused --flash-attention only, which run the same code (CI uses it: on a fresh
# machine every variant's kernels compile cold on lavapipe, about 2-3 minutes each).
if [ "${ROUTE_SET:-all}" = combined ]; then
  VARIANTS=("" --fused "--fused --flash-attention")
else
  VARIANTS=("" --gather-embedding --fused-attention --fused-layer-norm --fused-cross-entropy
    --fused-bias --fused --flash-attention "--fused --flash-attention")
fi

bash scripts/install_lavapipe.sh
cargo build --release --features wgpu
BIN=target/release/lmtrain-wgpu
cp target/release/lmtrain "$BIN"

failed=0
echo "== check-ops on wgpu" >&2
if ! "$BIN" check-ops --device wgpu --shapes small; then
  failed=1
fi

loss_lines() { # device flags...: loss_last of each RESULT line, in order
  local device=$1
  shift
  "$BIN" bench --device "$device" "${SHAPE[@]}" "$@" 2>/dev/null \
    | sed -n 's/^RESULT .* clip_ema=\([01]\) .* loss_last_full=\([^ ]*\).*/\1 \2/p'
}

variant_name() { # flags: a one-word name for the ROUTE and PROFILE lines
  local name=${1:-plain}
  echo "${name// /}"
}

for v in "${VARIANTS[@]}"; do
  name=$(variant_name "$v")
  echo "== training step: $name" >&2
  # shellcheck disable=SC2086 # an empty variant passes no flag
  cpu=$(loss_lines cpu $v)
  # shellcheck disable=SC2086
  gpu=$(loss_lines wgpu $v)
  if [ -z "$cpu" ] || [ "$(wc -l <<<"$cpu")" != "$(wc -l <<<"$gpu")" ]; then
    echo "ROUTE variant=$name FAIL: a bench run printed no RESULT line (cpu: '$cpu', wgpu: '$gpu')"
    failed=1
    continue
  fi
  if ! paste -d' ' <(echo "$cpu") <(echo "$gpu") | awk -v v="$name" -v m="$MAX_REL" '
    { d = $2 - $4; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2)
      num = "^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$"; ok = ($2 ~ num && $4 ~ num && r <= m + 0)
      printf "ROUTE variant=%s clip_ema=%s cpu_loss_last=%s wgpu_loss_last=%s rel_diff=%.2e %s\n", v, $1, $2, $4, r, ok ? "ok" : "FAIL"
      if (!ok) bad = 1 }
    END { exit bad }'; then
    failed=1
  fi
done

PROFILE_SHAPE=("${MODEL[@]}" --steps 2 --warmup-steps 1 --no-clip-ema-line)
# Linear matmuls of one step: 4 a block forward and 8 backward, and the tied head's 3.
LINEAR=$((12 * LAYERS + 3))
profile_log=$(mktemp)
trap 'rm -f "$profile_log"' EXIT
for v in "${VARIANTS[@]}"; do
  name=$(variant_name "$v")
  echo "== profile: $name" >&2
  : >"$profile_log" # the profiler appends
  # shellcheck disable=SC2086
  if ! "$BIN" bench --device wgpu "${PROFILE_SHAPE[@]}" $v --profile "$profile_log" >/dev/null 2>&1 \
    || ! table=$(python3 scripts/profile_breakdown.py "$profile_log"); then
    echo "PROFILE variant=$name FAIL: the bench or profile_breakdown.py failed"
    failed=1
    continue
  fi
  layers=$(sed -n 's/^total .*(\([0-9]*\) layers)$/\1/p' <<<"$table")
  linear=$(sed -n 's/^matmul (linear) *\([0-9]*\) launches.*/\1/p' <<<"$table")
  verdict=ok
  if [ "$layers" != "$LAYERS" ] || [ "$linear" != "$LINEAR" ]; then
    verdict=FAIL
    failed=1
  fi
  echo "PROFILE variant=$name layers=$layers linear_matmuls=$linear $verdict"
done

if [ "$failed" -ne 0 ]; then
  echo "check_cube_route: a check of the cubecl route failed (lines marked FAIL above)" >&2
  exit 1
fi
echo "check_cube_route: every check passed" >&2
