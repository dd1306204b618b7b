#!/usr/bin/env bash
# The LM GVA evidence runs (issue: GVA evidence on the language model): the shipped quickstart
# (synthetic corpus, 1,000 steps, 40 generation evaluations) with eval.num_prompts = 64, over
#   - schedule: cosine (as shipped) and constant lr after warmup (the paper's pre-cooldown regime)
#   - averaging: plain EMA (ema.kind = "poly", κ = 0.5) and bias-corrected BEMA (ema.kind = "bema")
#   - seeds:     train.seed = 0 … N−1
# One run after another, seed-major (every setting of seed 0 first, so a stopped script has whole
# seeds), or the seeds side by side (--parallel), then `lmtrain report` per schedule and
# averaging, pooling the seeds, and one overlay of all four settings (report-all), with
# --from-step left at its default. A BEMA run's raw weights are the EMA run's of the same seed (the averaging
# does not touch training), so its report's raw columns repeat the EMA report's.
# A run directory with a checkpoint is resumed, so the script can be started again after a stop.
# About 18 min a run on 2 idle cores (`scripts/sweep_gva.sh --dry-run` estimates it).
# --parallel runs the seeds at the same time, one process each (RAYON_NUM_THREADS=1, logs in
# OUT_DIR/seed<N>.log).
#   Usage: scripts/lm_evidence.sh [--parallel] OUT_DIR [SEEDS]     (default SEEDS: 2)
set -euo pipefail
cd "$(dirname "$0")/.."
parallel=0
if [ "${1:-}" = --parallel ]; then parallel=1; shift; fi
out=${1:?usage: scripts/lm_evidence.sh [--parallel] OUT_DIR [SEEDS]}
seeds=${2:-2}
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "lm_evidence: SEEDS must be a whole number ≥ 1, got '$seeds'" >&2; exit 2; }
LMTRAIN=${LMTRAIN:-$PWD/target/release/lmtrain}
[ -x "$LMTRAIN" ] || { echo "lm_evidence: $LMTRAIN not found; run scripts/setup.sh" >&2; exit 1; }
ls data/synth/train-*.parquet >/dev/null 2>&1 || { echo "lm_evidence: data/synth is missing; run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s)
# One seed's four runs, one after another.
run_seed() {
  local seed=$1 sched avg name kind t0
  for sched in cosine constant; do
    for avg in ema bema; do
      name=$sched-$avg-s$seed
      kind=poly; [ $avg = ema ] || kind=bema
      t0=$(date +%s)
      if ls "$out/$name/checkpoints/"ckpt-*.safetensors >/dev/null 2>&1; then
        echo "== $name: resuming" >&2
        "$LMTRAIN" train --resume "$out/$name"
      else
        echo "== $name" >&2
        "$LMTRAIN" --config configs/quickstart.toml --set "train.out_dir=$out" \
          --set "train.run_name=$name" --set "train.seed=$seed" --set "schedule.kind=$sched" \
          --set "ema.kind=$kind" --set eval.num_prompts=64
      fi
      echo "lm_evidence: $name took $(( $(date +%s) - t0 )) s" >&2
    done
  done
}
if [ "$parallel" = 1 ]; then
  # The quickstart keeps about one core busy, so on 2 cores two seeds at once take little
  # longer than one.
  pids=()
  for seed in $(seq 0 $((seeds - 1))); do
    ( RAYON_NUM_THREADS=1 run_seed "$seed" > "$out/seed$seed.log" 2>&1 ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
else
  for seed in $(seq 0 $((seeds - 1))); do run_seed "$seed"; done
fi
for sched in cosine constant; do
  for avg in ema bema; do
    runs=()
    for seed in $(seq 0 $((seeds - 1))); do runs+=("$out/$sched-$avg-s$seed"); done
    "$LMTRAIN" report "${runs[@]}" --out "$out/report-$sched-$avg"
  done
done
# All of them in one overlay: four settings, each pooled over its seeds.
all=()
for sched in cosine constant; do
  for avg in ema bema; do
    for seed in $(seq 0 $((seeds - 1))); do all+=("$out/$sched-$avg-s$seed"); done
  done
done
"$LMTRAIN" report "${all[@]}" --out "$out/report-all"
echo "lm_evidence: $(( ($(date +%s) - start) / 60 )) min in all; reports in $out/report-*" >&2
