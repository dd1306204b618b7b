#!/usr/bin/env bash
# The GVA sweep, meant to be left overnight on one GPU, ending with the overlay report.
# Every run logs raw and EMA weights, so EMA on/off is not an axis; the sweep varies
#   - EMA strength: ema.power κ ∈ {0.5, 0.75}
#   - learning-rate decay: on (the config's schedule) / off (constant after warmup)
#   - batch size ×1 and ×4 through optim.grad_accum, at an equal token budget (×4 runs take a
#     quarter of the steps, with warmup, decay and evaluation cadences scaled alike)
# 8 runs in all.
#
#   scripts/sweep_gva.sh [--config FILE] [--out DIR] [--smoke] [--set KEY=VALUE ...]
#
# --config  base config (default configs/tinystories.toml)
# --out     sweep directory (default runs/sweep-<config stem>); runs go in DIR/runs, the overlay
#           report in DIR/report
# --smoke   the smallest setting: a tiny model for a few dozen steps on the quickstart corpus, on
#           the CPU, in minutes (CI runs it end to end)
# --set     extra overrides passed to every run
# LMTRAIN overrides the binary (default target/release/lmtrain).
set -euo pipefail
cd "$(dirname "$0")/.."

config=configs/tinystories.toml
out=""
smoke=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --smoke) smoke=1; config=configs/quickstart.toml; shift ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
  esac
done
LMTRAIN="${LMTRAIN:-target/release/lmtrain}"
[ -x "$LMTRAIN" ] || { echo "sweep_gva: $LMTRAIN not found; run scripts/setup.sh" >&2; exit 1; }
stem=$(basename "$config" .toml)
[ -n "$out" ] || out="runs/sweep-$stem$([ $smoke = 1 ] && echo -smoke)"
mkdir -p "$out/runs"
out=$(cd "$out" && pwd)

# The base config's step counts, scaled for the ×4 batch.
get() { "$LMTRAIN" --config "$config" "${extra[@]}" "${base[@]}" --dump-config | awk -F' = ' -v k="$1" -v s="$2" '
  /^\[/ { sec = substr($0, 2, length($0) - 2) } sec == s && $1 == k { print $2; exit }'; }
base=()
if [ $smoke = 1 ]; then
  base=(--set device=cpu --set model.n_layer=2 --set model.n_embd=64 --set model.n_head=2
        --set model.block_size=64 --set train.batch_size=8 --set train.max_steps=40
        --set schedule.warmup_steps=8 --set schedule.decay_steps=32 --set ema.burn_in=8
        --set eval.val_every=4 --set eval.val_windows=8 --set eval.generate_every=4
        --set eval.num_prompts=2 --set eval.generate_tokens=48 --set checkpoint.every=40
        --set train.log_every=4)
fi
steps=$(get max_steps train); warmup=$(get warmup_steps schedule); decay=$(get decay_steps schedule)
burn=$(get burn_in ema); val_every=$(get val_every eval); gen_every=$(get generate_every eval)
accum=$(get grad_accum optim)
[ "$gen_every" -gt 0 ] || { echo "sweep_gva: eval.generate_every is 0 in $config; set it" >&2; exit 1; }
q() { local v=$(( $1 / 4 )); [ "$v" -ge 1 ] && echo "$v" || echo 1; }

runs=()
for power in 0.5 0.75; do
  for decay_on in 1 0; do
    for mult in 1 4; do
      name="k${power}-decay${decay_on}-batch${mult}x"
      args=(--set "train.out_dir=$out/runs" --set "train.run_name=$name" --set "ema.power=$power")
      [ $decay_on = 1 ] || args+=(--set schedule.kind=constant)
      if [ $mult = 4 ]; then
        args+=(--set "optim.grad_accum=$(( accum * 4 ))" --set "train.max_steps=$(q "$steps")"
               --set "schedule.warmup_steps=$(q "$warmup")" --set "schedule.decay_steps=$(q "$decay")"
               --set "ema.burn_in=$(q "$burn")" --set "eval.val_every=$(q "$val_every")"
               --set "eval.generate_every=$(q "$gen_every")")
      fi
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
"$LMTRAIN" report "${runs[@]}" --out "$out/report"
echo "sweep_gva: report in $out/report/report.md" >&2
