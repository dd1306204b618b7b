#!/usr/bin/env bash
# The BC evidence runs (issue: behaviour cloning through the trainer): the shipped configs of
# Walker2d and Hopper at their defaults (100k steps, 50 rollout evaluations of 16 episodes, raw
# and EMA), two seeds each, one after another; then `lmtrain report` over each environment's two
# runs. A run directory that exists is resumed, so the script can be started again after a stop.
# About 25 min per run on one idle core (RAYON_NUM_THREADS=1); the rollouts use every core given.
#   Usage: scripts/bc_evidence.sh OUT_DIR [ENV ...]     (default envs: walker2d hopper)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/bc_evidence.sh OUT_DIR [ENV ...]}
shift
envs=("$@")
[ ${#envs[@]} -gt 0 ] || envs=(walker2d hopper)
LMTRAIN=${LMTRAIN:-$PWD/target/release/lmtrain}
mkdir -p "$out"
out=$(cd "$out" && pwd)
for env in "${envs[@]}"; do
  [ -f "data/bc/$env/dataset.json" ] || { echo "bc_evidence: data/bc/$env is missing; run scripts/setup.sh" >&2; exit 1; }
  for seed in 0 1; do
    name=$env-seed$seed
    if [ -d "$out/$name/checkpoints" ]; then
      "$LMTRAIN" train --resume "$out/$name"
    else
      "$LMTRAIN" --config "configs/bc/$env.toml" --set "train.out_dir=$out" \
        --set "train.run_name=\"$name\"" --set "train.seed=$seed"
    fi
  done
  # Every evaluation: the early phase, where a clone swings most, is the interesting one.
  "$LMTRAIN" report "$out/$env-seed0" "$out/$env-seed1" --from-step 0 --out "$out/report-$env"
done
