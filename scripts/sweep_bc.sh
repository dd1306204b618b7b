#!/usr/bin/env bash
# The BC sweep (the paper's §4 ablations on our trainer), ending with the overlay report. Every
# run logs raw and EMA weights, so EMA on/off is not an axis; the sweep varies
#   - EMA strength: ema.power κ ∈ {0.5, 0.75}
#   - learning-rate decay: off (the config's constant rate) / on (cosine to 0 over the run)
#   - batch ×1 and ×4 through optim.grad_accum, at an equal sample budget (×4 runs take a quarter
#     of the steps, with warm-up, burn-in and evaluation cadences scaled alike)
#   - dataset size: data.episodes 25 and 100 (the shipped datasets hold 100)
# 16 runs in all; the total time is estimated up front. A run directory that exists is resumed.
#
#   scripts/sweep_bc.sh [--config FILE] [--out DIR] [--smoke] [--set KEY=VALUE ...]
#
# --config  base BC config (default configs/bc/walker2d.toml)
# --out     sweep directory (default runs/sweep-bc-<config stem>); runs in DIR/runs, the overlay
#           report in DIR/report
# --smoke   the smallest setting: a 2×32 MLP for 40 steps on 5 and 20 Hopper episodes, rollouts of
#           2 episodes × 50 steps, in about a minute on 2 cores (CI runs it end to end)
# --set     extra overrides passed to every run
# LMTRAIN overrides the binary (default target/release/lmtrain).
set -euo pipefail
cd "$(dirname "$0")/.."

config=configs/bc/walker2d.toml
out=""
smoke=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --smoke) smoke=1; config=configs/bc/hopper.toml; shift ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
done
LMTRAIN="${LMTRAIN:-target/release/lmtrain}"
[ -x "$LMTRAIN" ] || { echo "sweep_bc: $LMTRAIN not found; run scripts/setup.sh" >&2; exit 1; }
stem=$(basename "$config" .toml)
[ -n "$out" ] || out="runs/sweep-bc-$stem$([ $smoke = 1 ] && echo -smoke)"
mkdir -p "$out/runs"
out=$(cd "$out" && pwd)

base=()
sizes=(25 100)
if [ $smoke = 1 ]; then
  base=(--set "policy.hidden=[32, 32]" --set train.max_steps=40 --set train.batch_size=64
        --set train.log_every=10 --set schedule.warmup_steps=4 --set ema.burn_in=8
        --set eval.val_every=10 --set eval.rollout_every=10 --set eval.rollouts=2
        --set eval.horizon=50 --set checkpoint.every=40)
  sizes=(5 20)
fi
get() { "$LMTRAIN" --config "$config" "${extra[@]}" "${base[@]}" --dump-config | awk -F' = ' -v k="$1" -v s="$2" '
  /^\[/ { sec = substr($0, 2, length($0) - 2) } sec == s && $1 == k { print $2; exit }'; }
steps=$(get max_steps train); warmup=$(get warmup_steps schedule); burn=$(get burn_in ema)
val_every=$(get val_every eval); roll_every=$(get rollout_every eval); accum=$(get grad_accum optim)
rollouts=$(get rollouts eval); horizon=$(get horizon eval)
[ "$roll_every" -gt 0 ] || { echo "sweep_bc: eval.rollout_every is 0 in $config; set it" >&2; exit 1; }
q() { local v=$(( $1 / 4 )); [ "$v" -ge 1 ] && echo "$v" || echo 1; }

# Up front: the time the whole sweep should take on 2 cores, from the figures BENCHMARKS.md
# measured (a 3×256 MLP at batch 256: ~100 steps/s on one core; an evaluation's 2×16 Walker2d
# episodes of 1,000 steps: ~5 s). Equal samples, so the ×4 runs cost about the same.
evals=$(( steps / roll_every ))
est=$(( 16 * (steps / 100 + evals * 5 * rollouts * horizon / 16000) ))
echo "sweep_bc: 16 runs of $steps steps (×4-batch runs: $(q "$steps")), $evals rollout evaluations each of 2×$rollouts episodes ≤ $horizon steps; about $(( est / 60 )) min on 2 cores (estimated)" >&2

runs=()
for power in 0.5 0.75; do
  for decay_on in 0 1; do
    for mult in 1 4; do
      for eps in "${sizes[@]}"; do
        name="k${power}-decay${decay_on}-batch${mult}x-ep${eps}"
        s=$steps; w=$warmup; b=$burn; v=$val_every; r=$roll_every
        args=(--set "train.out_dir=$out/runs" --set "train.run_name=\"$name\"" --set "ema.power=$power"
              --set "data.episodes=$eps")
        if [ $mult = 4 ]; then
          s=$(q "$steps"); w=$(q "$warmup"); b=$(q "$burn"); v=$(q "$val_every"); r=$(q "$roll_every")
          args+=(--set "optim.grad_accum=$(( accum * 4 ))" --set "train.max_steps=$s"
                 --set "schedule.warmup_steps=$w" --set "ema.burn_in=$b"
                 --set "eval.val_every=$v" --set "eval.rollout_every=$r")
        fi
        [ $decay_on = 0 ] || args+=(--set schedule.kind=cosine --set "schedule.decay_steps=$(( s > w ? s - w : 1 ))"
                                    --set schedule.min_lr=0.0)
        if ls "$out/runs/$name/checkpoints/"ckpt-*.safetensors >/dev/null 2>&1; then
          echo "== $name: resuming" >&2
          "$LMTRAIN" train --resume "$out/runs/$name" --config "$config" "${extra[@]}" "${base[@]}" "${args[@]}"
        else
          echo "== $name" >&2
          "$LMTRAIN" --config "$config" "${extra[@]}" "${base[@]}" "${args[@]}"
        fi
        runs+=("$out/runs/$name")
      done
    done
  done
done
"$LMTRAIN" report "${runs[@]}" --out "$out/report"
echo "sweep_bc: report in $out/report/report.md" >&2
