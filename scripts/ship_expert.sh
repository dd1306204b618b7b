#!/usr/bin/env bash
# Ships a SAC run's expert into data/experts/ (committed with the project):
#   data/experts/<stem>.safetensors + .json   the actor of the run's best evaluation (--final: of
#                                              its newest checkpoint) and its card (10 episodes)
#   data/experts/checkpoints/<stem>.sac.safetensors
#                                              the newest checkpoint without its replay buffer, which
#                                              `lmtrain expert train --resume FILE --refill-buffer`
#                                              continues from on another machine
# Usage: scripts/ship_expert.sh STEM RUN_DIR [--final]     (STEM: hopper, walker2d, half_cheetah, ant, humanoid)
set -euo pipefail
cd "$(dirname "$0")/.."
stem=${1:?usage: scripts/ship_expert.sh STEM RUN_DIR [--final]}
run=${2:?usage: scripts/ship_expert.sh STEM RUN_DIR [--final]}
which=--best
[ "${3:-}" = "--final" ] && which=""
LMTRAIN=${LMTRAIN:-target/release/lmtrain}
[ -d "$run/checkpoints" ] || { echo "ship_expert: $run is not a SAC run directory (no checkpoints/)" >&2; exit 1; }
newest=$(ls "$run"/checkpoints/sac-*.safetensors | sort | tail -n 1)
mkdir -p data/experts/checkpoints
# The card is evaluated on seeds 2000000.. : not the training evaluations' seeds that picked the best.
"$LMTRAIN" expert export --checkpoint "$run" $which --out "data/experts/$stem.safetensors" --episodes 10 --seed 2000000
# cp then mv, so that a reader never sees a half-copied file.
cp "$newest" "data/experts/checkpoints/.$stem.sac.safetensors.tmp"
mv "data/experts/checkpoints/.$stem.sac.safetensors.tmp" "data/experts/checkpoints/$stem.sac.safetensors"
echo "ship_expert: data/experts/$stem.{safetensors,json} and checkpoints/$stem.sac.safetensors (from $(basename "$newest"))" >&2
