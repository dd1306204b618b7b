#!/usr/bin/env bash
# Step rate of lmtrain's MuJoCo environments against Gymnasium and a bare C mj_step loop, all in
# one run on this machine (BENCHMARKS.md records the ratios):
#   single: one environment on one core (taskset -c 0): Gymnasium's gym.make(ENV) vs lmtrain;
#   batch:  THREADS threads stepping in parallel: the bare C loop (scripts/env_bench_loop.c,
#           compiled here against third_party/mujoco) vs `lmtrain env bench --threads THREADS`.
# Each measurement is taken ROUNDS times, interleaved; the rates are medians over the rounds and
# the ratios are medians of each round's ratio (the two sides of a ratio run back to back, so a
# round's ratio is less disturbed by other load on the machine than the rates are).
#
#   scripts/env_bench.sh [STEPS] [ROUNDS] [THREADS]      (defaults 20000 5 2; Walker2d-v4)
#
# Needs scripts/setup.sh (the library and target/release/lmtrain) and the Gymnasium venv that
# scripts/make_env_fixtures.py creates (made here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${1:-20000}
ROUNDS=${2:-5}
THREADS=${3:-2}
ENV_ID=Walker2d-v4
MJ=third_party/mujoco
LMTRAIN=target/release/lmtrain
VENV_PY=.venv-env-fixtures/bin/python

[ -f "$MJ/lib/libmujoco.so" ] || scripts/install_mujoco.sh
if [ ! -x "$LMTRAIN" ]; then
  echo "env_bench: $LMTRAIN is missing; run scripts/setup.sh (or cargo build --release)" >&2
  exit 1
fi
[ -x "$VENV_PY" ] || python3 scripts/make_env_fixtures.py --venv-only

mkdir -p target/env_bench
cc -O2 -o target/env_bench/env_bench_loop scripts/env_bench_loop.c -I"$MJ/include" -L"$MJ/lib" \
  -lmujoco -pthread -Wl,-rpath,"$PWD/$MJ/lib"

cat >target/env_bench/gym_bench.py <<'EOF'
import sys, time
import gymnasium as gym

env_id, steps = sys.argv[1], int(sys.argv[2])
env = gym.make(env_id)
env.reset(seed=0)
env.action_space.seed(0)
pool = [env.action_space.sample() for _ in range(1000)]
seed = 0
t0 = time.perf_counter()
for i in range(steps):
    _, _, terminated, truncated, _ = env.step(pool[i % 1000])
    if terminated or truncated:
        seed += 1
        env.reset(seed=seed)
seconds = time.perf_counter() - t0
print(f"RESULT impl=gymnasium threads=1 steps={steps} seconds={seconds:.3f} steps_per_s={steps / seconds:.0f}")
EOF

rate() { sed -n 's/.*steps_per_s=\([0-9.]*\).*/\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: >target/env_bench/results.txt
for r in $(seq "$ROUNDS"); do
  echo "env_bench: round $r of $ROUNDS" >&2
  g=$(taskset -c 0 "$VENV_PY" target/env_bench/gym_bench.py "$ENV_ID" "$STEPS" 2>/dev/null | grep RESULT)
  l=$(taskset -c 0 "$LMTRAIN" env bench --env "$ENV_ID" --steps "$STEPS" --threads 1 | grep RESULT)
  c1=$(taskset -c 0 target/env_bench/env_bench_loop "$MJ/assets/walker2d.xml" "$STEPS" 1 | grep RESULT)
  cb=$(target/env_bench/env_bench_loop "$MJ/assets/walker2d.xml" $((STEPS * THREADS)) "$THREADS" | grep RESULT)
  lb=$("$LMTRAIN" env bench --env "$ENV_ID" --steps $((STEPS * THREADS)) --threads "$THREADS" | grep RESULT)
  printf 'gym1 %s\nlm1 %s\nc1 %s\ncb %s\nlmb %s\n' "$(echo "$g" | rate)" "$(echo "$l" | rate)" \
    "$(echo "$c1" | rate)" "$(echo "$cb" | rate)" "$(echo "$lb" | rate)" >>target/env_bench/results.txt
  printf 'r1 %s\nrb %s\n' "$(echo "$(echo "$l" | rate) / $(echo "$g" | rate)" | bc -l)" \
    "$(echo "$(echo "$lb" | rate) / $(echo "$cb" | rate)" | bc -l)" >>target/env_bench/results.txt
  printf '%s\n%s\n%s\n%s\n%s\n' "$g" "$l" "$c1" "$cb" "$lb" >&2
done

m() { grep "^$1 " target/env_bench/results.txt | cut -d' ' -f2 | median; }
gym1=$(m gym1); lm1=$(m lm1); c1=$(m c1); cb=$(m cb); lmb=$(m lmb)
r1=$(printf '%.3f' "$(m r1)"); rb=$(printf '%.3f' "$(m rb)")
smt=$(lscpu | sed -n 's/^Thread(s) per core: *//p')
echo "env_bench: $ENV_ID, $STEPS steps per thread, $ROUNDS rounds; $(nproc) CPUs, $smt thread(s) per core"
printf '  one core:   Gymnasium %.0f steps/s, lmtrain %.0f steps/s (ratio %s), bare C %.0f steps/s\n' \
  "$gym1" "$lm1" "$r1" "$c1"
printf '  %s threads: bare C %.0f steps/s, lmtrain %.0f steps/s (ratio %s)\n' "$THREADS" "$cb" "$lmb" "$rb"
echo "RESULT single_gymnasium=$gym1 single_lmtrain=$lm1 single_c=$c1 single_ratio=$r1 batch_c=$cb batch_lmtrain=$lmb batch_ratio=$rb"
