#!/usr/bin/env bash
# The GVA sweep, meant to be left overnight on one GPU, ending with the overlay report.
# Every run logs raw and EMA weights, so EMA on/off is not an axis; the sweep varies
#   - ema:      EMA strength, ema.power κ ∈ {0.5, 0.75}
#   - schedule: learning-rate decay on (the config's schedule) / off (constant after warmup)
#   - batch:    batch size ×1 and ×4 through optim.grad_accum, at an equal token budget (×4 runs
#               take a quarter of the steps, with warmup, decay and evaluation cadences scaled
#               alike)
# 8 settings in all, each run once or with several seeds; the total time is estimated up front.
# A run directory with a checkpoint is resumed.
#
#   scripts/sweep_gva.sh [--config FILE] [--out DIR] [--smoke] [--seeds N] [--axes LIST]
#                        [--dry-run] [--set KEY=VALUE ...]
#
# --config   base config (default configs/tinystories.toml)
# --out      sweep directory (default runs/sweep-<config stem>); runs go in DIR/runs, the overlay
#            report in DIR/report
# --smoke    the smallest setting: a tiny model for a few dozen steps on the quickstart corpus,
#            on the CPU, in minutes (CI runs it end to end)
# --seeds N  run every setting with train.seed = 0, 1, …, N−1 (run names end in -s<seed>); the
#            report pools runs that differ only in their seed. Without it each setting runs once,
#            with the config's seed.
# --axes L   vary only the axes in the comma-separated list L (of ema, schedule, batch; default
#            all three); an axis left out stays at the config's setting (its κ, its schedule,
#            batch ×1), e.g. --axes schedule --seeds 3: cosine and constant lr, 3 seeds each
# --dry-run  print the runs and the time estimate, run nothing
# --set      extra overrides passed to every run
# LMTRAIN overrides the binary (default target/release/lmtrain).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,29p' "$0" >&2; exit 2; }
config=configs/tinystories.toml
out=""
smoke=0
seeds=""
axes=ema,schedule,batch
dry=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --smoke) smoke=1; config=configs/quickstart.toml; shift ;;
    --seeds) seeds=$2; shift 2 ;;
    --axes) axes=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    *) usage ;;
  esac
done
[ -z "$seeds" ] || [[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "sweep_gva: --seeds takes a whole number ≥ 1, got '$seeds'" >&2; exit 2; }
vary_ema=0; vary_schedule=0; vary_batch=0
IFS=, read -r -a axis_list <<< "$axes"
for a in "${axis_list[@]}"; do
  case "$a" in
    ema) vary_ema=1 ;;
    schedule) vary_schedule=1 ;;
    batch) vary_batch=1 ;;
    *) echo "sweep_gva: unknown axis '$a' in --axes (known: ema, schedule, batch)" >&2; exit 2 ;;
  esac
done
LMTRAIN="${LMTRAIN:-target/release/lmtrain}"
[ -x "$LMTRAIN" ] || { echo "sweep_gva: $LMTRAIN not found; run scripts/setup.sh" >&2; exit 1; }
stem=$(basename "$config" .toml)
suffix=""; [ $smoke = 0 ] || suffix=-smoke
[ -n "$out" ] || out="runs/sweep-$stem$suffix"
# Absolute: a relative train.out_dir would resolve against the config file's directory.
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

# A key of the resolved config (section "" for top-level keys), quotes stripped.
get() { "$LMTRAIN" --config "$config" "${extra[@]}" "${base[@]}" --dump-config | awk -F' = ' -v k="$1" -v s="$2" '
  /^\[/ { sec = substr($0, 2, length($0) - 2) } sec == s && $1 == k { gsub(/"/, "", $2); print $2; exit }'; }
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
accum=$(get grad_accum optim); config_power=$(get power ema)
[ "$gen_every" -gt 0 ] || { echo "sweep_gva: eval.generate_every is 0 in $config; set it" >&2; exit 1; }
q() { local v=$(( $1 / 4 )); [ "$v" -ge 1 ] && echo "$v" || echo 1; }

# The axes' values: a fixed axis keeps the config's setting.
powers=("$config_power"); [ $vary_ema = 0 ] || powers=(0.5 0.75)
decays=(1); [ $vary_schedule = 0 ] || decays=(1 0)
mults=(1); [ $vary_batch = 0 ] || mults=(1 4)
seed_list=(""); [ -z "$seeds" ] || mapfile -t seed_list < <(seq 0 $(( seeds - 1 )))
n_runs=$(( ${#powers[@]} * ${#decays[@]} * ${#mults[@]} * ${#seed_list[@]} ))

# Up front: the time one run should take, from the rates BENCHMARKS.md measured, scaled by the
# model's size (≈ 12·n_layer·n_embd² + vocab·n_embd multiply-adds per token). CPU (2 cores): the
# quickstart model (1.05M) trains at ~4.5K tokens/s and generates at about the same rate, in
# batches; GPU (one H200): the TinyStories-class model (29.4M) trains at 155K tokens/s, and
# generation is latency-bound, ~7 ms per decoding step for a whole batch. Validations are
# forward-only (a third of a training token). The ×4-batch runs see the same tokens and the same
# number of evaluations, so every run costs about the same. A rough figure: the shared CPU of a
# busy machine, a cold kernel cache or a different card move it.
device=$(get device "")
gpu=0
case "$device" in
  cuda*) gpu=1 ;;
  auto) if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi ;;
esac
run_s=$(awk -v L="$(get n_layer model)" -v D="$(get n_embd model)" -v V="$(get vocab_size model)" \
  -v T="$(get block_size model)" -v B="$(get batch_size train)" -v A="$accum" -v S="$steps" \
  -v VE="$val_every" -v VW="$(get val_windows eval)" -v GE="$gen_every" \
  -v P="$(get num_prompts eval)" -v SS="$(get sample_seeds eval)" -v GT="$(get generate_tokens eval)" \
  -v gpu="$gpu" 'BEGIN {
    cost = 12 * L * D * D + V * D
    train = gpu ? 155000 * 29.4e6 / cost : 4500 * 1.05e6 / cost
    evals = int(S / GE)
    t = S * B * A * T / train + int(S / VE) * 2 * VW * (T + 1) / (3 * train)
    t += gpu ? evals * 2 * 2 * GT * 0.007 : evals * 2 * P * (1 + SS) * GT / train
    printf "%d", t + 10
  }')
total_s=$(( run_s * n_runs ))
on="2 CPU cores"; [ $gpu = 0 ] || on="one GPU"
duration() { if [ "$1" -lt 120 ]; then echo "$1 s"; elif [ "$1" -lt 7200 ]; then echo "$(( ($1 + 59) / 60 )) min"; else echo "$(( ($1 + 1799) / 3600 )) h"; fi; }
echo "sweep_gva: ${#powers[@]} κ × ${#decays[@]} schedule × ${#mults[@]} batch = $(( n_runs / ${#seed_list[@]} )) settings × ${#seed_list[@]} seed(s) = $n_runs runs of $steps steps (×4-batch runs: $(q "$steps")), $(( steps / gen_every )) generation evaluations each; about $(duration $total_s) in all on $on ($(duration "$run_s") a run; a rough estimate)" >&2

runs=()
for power in "${powers[@]}"; do
  for decay_on in "${decays[@]}"; do
    for mult in "${mults[@]}"; do
      for seed in "${seed_list[@]}"; do
        name="k${power}-decay${decay_on}-batch${mult}x${seed:+-s$seed}"
        args=(--set "train.out_dir=$out/runs" --set "train.run_name=$name")
        [ $vary_ema = 0 ] || args+=(--set "ema.power=$power")
        [ -z "$seed" ] || args+=(--set "train.seed=$seed")
        [ $decay_on = 1 ] || args+=(--set schedule.kind=constant)
        if [ $mult = 4 ]; then
          args+=(--set "optim.grad_accum=$(( accum * 4 ))" --set "train.max_steps=$(q "$steps")"
                 --set "schedule.warmup_steps=$(q "$warmup")" --set "schedule.decay_steps=$(q "$decay")"
                 --set "ema.burn_in=$(q "$burn")" --set "eval.val_every=$(q "$val_every")"
                 --set "eval.generate_every=$(q "$gen_every")")
        fi
        runs+=("$out/runs/$name")
        if [ $dry = 1 ]; then
          echo "  $name: ${args[*]:4}" >&2
          continue
        fi
        mkdir -p "$out/runs"
        if ls "$out/runs/$name/checkpoints/"ckpt-*.safetensors >/dev/null 2>&1; then
          echo "== $name: resuming" >&2
          "$LMTRAIN" train --resume "$out/runs/$name" --config "$config" "${extra[@]}" "${base[@]}" "${args[@]}"
        else
          echo "== $name" >&2
          "$LMTRAIN" --config "$config" "${extra[@]}" "${base[@]}" "${args[@]}"
        fi
      done
    done
  done
done
[ $dry = 0 ] || exit 0
"$LMTRAIN" report "${runs[@]}" --out "$out/report"
echo "sweep_gva: report in $out/report/report.md" >&2
