#!/usr/bin/env bash
# The fault suite: what an overnight run survives. Each check runs the tiny CPU config of the
# failing cases (tests/fixtures/cases/base.toml) on a small fixture shard, injects a fault
# (LMTRAIN_FAULT, kill -9, SIGINT/SIGTERM, a file-size limit, damaged files) and checks what is
# left: exit status, the newest intact checkpoint, and that a resumed run's losses equal an
# uninterrupted run's bit for bit. Prints one `FAULT <check> ok|FAIL <detail>` line per check and
# a summary; exits non-zero if any check failed. About a minute on 2 cores.
#   Usage: scripts/fault_suite.sh [OUT_DIR]      (LMTRAIN=path overrides target/release/lmtrain)
set -uo pipefail
# Job control: background jobs then keep SIGINT (a script's background jobs otherwise ignore it).
set -m
cd "$(dirname "$0")/.."
LMTRAIN=${LMTRAIN:-$PWD/target/release/lmtrain}
out=${1:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: the runs and the checks below must name the same place
base=$PWD/tests/fixtures/cases/base.toml
train=$PWD/tests/fixtures/cases/c02/train-one.parquet
val=$PWD/tests/fixtures/cases/c02/val.parquet
fails=0
passes=0
report() { # name ok|FAIL detail
  echo "FAULT $1 $2 $3"
  if [ "$2" = ok ]; then passes=$((passes + 1)); else fails=$((fails + 1)); fi
}
run() { # name [extra args...]: the tiny run, 30 steps, checkpoints every 10
  local name=$1; shift
  "$LMTRAIN" --config "$base" --set train.out_dir="\"$out\"" --set train.run_name="\"$name\"" \
    --set data.train_glob="\"$train\"" --set data.val_glob="\"$val\"" \
    --set train.max_steps=30 --set checkpoint.every=10 --set eval.val_every=10 --set train.log_every=1 "$@"
}
start_bg() { # fault log name [extra args...]: `run` in the background with LMTRAIN_FAULT set;
  # sets $pid to lmtrain's own pid (not a subshell's), so that signals reach it
  local fault=$1 log=$2 name=$3; shift 3
  LMTRAIN_FAULT=$fault "$LMTRAIN" --config "$base" --set train.out_dir="\"$out\"" --set train.run_name="\"$name\"" \
    --set data.train_glob="\"$train\"" --set data.val_glob="\"$val\"" \
    --set train.max_steps=30 --set checkpoint.every=10 --set eval.val_every=10 --set train.log_every=1 "$@" >"$log" 2>&1 &
  pid=$!
}
losses() { # run dir -> "step loss" lines of metrics.jsonl
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if "train_loss" in r: print(r["step"], repr(r["train_loss"]))' "$1/metrics.jsonl"
}
wait_for() { # file pattern seconds
  local t=0
  while ! grep -q "$2" "$1" 2>/dev/null; do sleep 0.1; t=$((t + 1)); [ $t -gt $(($3 * 10)) ] && return 1; done
}
newest() { ls "$1"/checkpoints/ckpt-*.safetensors 2>/dev/null | sort | tail -n 1 | sed 's/.*ckpt-0*//; s/\.safetensors//'; }

echo "fault_suite: runs in $out" >&2
run reference >"$out/reference.log" 2>&1 || { echo "fault_suite: the reference run failed; see $out/reference.log" >&2; exit 1; }
losses "$out/reference" >"$out/reference.losses"

# 1. kill -9 in the middle of a step, then resume: the losses equal the uninterrupted run's.
start_bg pause-in-step:0.2 "$out/kill-step.log" kill-step
wait_for "$out/kill-step.log" "fault: pausing 0.2 s in step 16" 60
kill -9 $pid; wait $pid 2>/dev/null
at=$(newest "$out/kill-step")
"$LMTRAIN" train --resume "$out/kill-step" >>"$out/kill-step.log" 2>&1
losses "$out/kill-step" >"$out/kill-step.losses"
if [ "$at" = 10 ] && cmp -s "$out/reference.losses" "$out/kill-step.losses"; then
  report kill-9-mid-step ok "killed in step 16, resumed from step 10, 30 losses bit-identical"
else report kill-9-mid-step FAIL "resumed from '$at'; losses differ: $(diff "$out/reference.losses" "$out/kill-step.losses" | head -3 | tr '\n' ' ')"; fi

# 2. kill -9 inside a checkpoint write: the previous checkpoint intact, no partial file taken.
start_bg pause-in-checkpoint-write:30 "$out/kill-write.log" kill-write
wait_for "$out/kill-write.log" "fault: pausing 30 s in the write of .*ckpt-000000020" 60
kill -9 $pid; wait $pid 2>/dev/null
tmp_left=$(ls -a "$out/kill-write/checkpoints" | grep -c '\.tmp\.' || true)
at=$(newest "$out/kill-write")
"$LMTRAIN" inspect "$out/kill-write" >/dev/null 2>&1 && intact=yes || intact=no
"$LMTRAIN" train --resume "$out/kill-write" >>"$out/kill-write.log" 2>&1
losses "$out/kill-write" >"$out/kill-write.losses"
if [ "$at" = 10 ] && [ $intact = yes ] && cmp -s "$out/reference.losses" "$out/kill-write.losses"; then
  report kill-9-mid-checkpoint-write ok "step 10 intact ($tmp_left temporary file left, never read), resumed, losses bit-identical"
else report kill-9-mid-checkpoint-write FAIL "newest '$at', inspect $intact"; fi

# 3. SIGINT and SIGTERM during validation, generation and checkpointing: a clean checkpoint, exit 0.
for sig in INT TERM; do
  for point in validation generation checkpoint-write; do
    name=sig$sig-$point
    extra=(--set eval.generate_every=10 --set eval.num_prompts=2 --set eval.generate_tokens=8 --set eval.prompt_tokens=4)
    start_bg "pause-in-$point:3" "$out/$name.log" "$name" "${extra[@]}"
    wait_for "$out/$name.log" "fault: pausing 3 s in" 60
    kill -$sig $pid; wait $pid; rc=$?
    at=$(newest "$out/$name")
    "$LMTRAIN" inspect "$out/$name" >/dev/null 2>&1 && intact=yes || intact=no
    if [ $rc = 0 ] && [ $intact = yes ] && [ "$at" = 10 ]; then
      report "SIG$sig-during-$point" ok "exit 0, clean checkpoint at step 10"
    else report "SIG$sig-during-$point" FAIL "exit $rc, newest checkpoint '$at', intact $intact"; fi
  done
done

# 4. A full disk while checkpointing: injected (ENOSPC) and a real file-size limit (ulimit -f).
cp -r "$out/reference" "$out/full-disk"
rm "$out"/full-disk/checkpoints/ckpt-000000020.safetensors "$out"/full-disk/checkpoints/ckpt-000000030.safetensors
LMTRAIN_FAULT=fail-write-after:0 "$LMTRAIN" train --resume "$out/full-disk" >"$out/full-disk.log" 2>&1; rc=$?
left=$(ls -a "$out/full-disk/checkpoints" | grep -c '\.tmp\.' || true)
if [ $rc != 0 ] && grep -q "No space left on device" "$out/full-disk.log" && grep -q "earlier checkpoints are intact" "$out/full-disk.log" \
   && [ "$(newest "$out/full-disk")" = 10 ] && [ "$left" = 0 ]; then
  report full-disk-injected ok "a clear error, step 10 kept, no partial file"
else report full-disk-injected FAIL "exit $rc, newest $(newest "$out/full-disk"), $left temporary files"; fi
size_kb=$(( $(stat -c %s "$out/reference/checkpoints/ckpt-000000010.safetensors") / 1024 / 2 ))
( trap '' XFSZ; ulimit -f "$size_kb"; exec "$LMTRAIN" train --resume "$out/full-disk" ) >"$out/ulimit.log" 2>&1; rc=$?
left=$(ls -a "$out/full-disk/checkpoints" | grep -c '\.tmp\.' || true)
if [ $rc != 0 ] && grep -q "earlier checkpoints are intact" "$out/ulimit.log" && [ "$(newest "$out/full-disk")" = 10 ] && [ "$left" = 0 ]; then
  report full-disk-ulimit ok "ulimit -f ${size_kb}K: a clear error ($(grep -o 'File too large[^;]*' "$out/ulimit.log" | head -n 1)), step 10 kept"
else report full-disk-ulimit FAIL "exit $rc, newest $(newest "$out/full-disk"), $left temporary files"; fi

# A real full filesystem where mounting is allowed: a tmpfs just large enough for one checkpoint.
tmpfs=$out/tmpfs
mkdir -p "$tmpfs"
ckpt_kb=$(( $(stat -c %s "$out/reference/checkpoints/ckpt-000000010.safetensors") / 1024 ))
if mount -t tmpfs -o size=$(( ckpt_kb * 3 / 2 ))k tmpfs "$tmpfs" 2>/dev/null; then
  cp -r "$out/full-disk" "$tmpfs/run" 2>/dev/null
  "$LMTRAIN" train --resume "$tmpfs/run" >"$out/tmpfs.log" 2>&1; rc=$?
  left=$(ls -a "$tmpfs/run/checkpoints" | grep -c '\.tmp\.' || true)
  newest_t=$(newest "$tmpfs/run")
  umount "$tmpfs"
  if [ $rc != 0 ] && grep -q "earlier checkpoints are intact" "$out/tmpfs.log" && [ "$newest_t" = 10 ] && [ "$left" = 0 ]; then
    report full-disk-tmpfs ok "a $(( ckpt_kb * 3 / 2 ))K tmpfs: $(grep -o 'No space left on device' "$out/tmpfs.log" | head -n 1), step 10 kept"
  else report full-disk-tmpfs FAIL "exit $rc, newest $newest_t, $left temporary files"; fi
else
  echo "FAULT full-disk-tmpfs skipped (mounting a tmpfs is not allowed here)"
fi

# 5. Damaged checkpoints: the newest truncated, then one with a flipped byte; a run directory
# falls back to the newest intact one for sample, export, inspect and --resume.
cp -r "$out/reference" "$out/damaged"
f=$out/damaged/checkpoints/ckpt-000000030.safetensors
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[-5] ^= 0x20; open(p, 'wb').write(b)
PY
ok=yes
"$LMTRAIN" sample --checkpoint "$out/damaged" --device cpu --prompt a --tokens 3 >/dev/null 2>"$out/damaged-sample.log" || ok=no
grep -q "skipping damaged checkpoint .*ckpt-000000030" "$out/damaged-sample.log" || ok=no
"$LMTRAIN" export --checkpoint "$out/damaged" --out "$out/damaged-hf" >/dev/null 2>&1 || ok=no
"$LMTRAIN" inspect "$out/damaged" 2>/dev/null | grep -q "step: 20" || ok=no
"$LMTRAIN" inspect "$f" >/dev/null 2>"$out/damaged-inspect.log" && ok=no
grep -q "checksum" "$out/damaged-inspect.log" || ok=no
truncate -s 1000 "$out/damaged/checkpoints/ckpt-000000020.safetensors"
"$LMTRAIN" train --resume "$out/damaged" >"$out/damaged-resume.log" 2>&1 || ok=no
grep -q "using the newest intact checkpoint, .*ckpt-000000010" "$out/damaged-resume.log" || ok=no
if [ $ok = yes ]; then report damaged-checkpoints ok "flipped byte and truncation named; sample/export/inspect/--resume fell back"
else report damaged-checkpoints FAIL "see $out/damaged-*.log"; fi

# 6. Damaged or mismatched inputs: each an error naming the file.
head -c 2000 "$train" >"$out/truncated.parquet"
"$LMTRAIN" --config "$base" --set train.out_dir="\"$out\"" --set data.train_glob="\"$out/truncated.parquet\"" \
  --set data.val_glob="\"$val\"" >"$out/truncated.log" 2>&1 && rc=0 || rc=$?
if [ $rc != 0 ] && grep -q "truncated.parquet" "$out/truncated.log"; then report truncated-parquet ok "$(grep -o 'error: .\{0,90\}' "$out/truncated.log" | head -n 1)"
else report truncated-parquet FAIL "exit $rc"; fi
"$LMTRAIN" --config "$base" --set train.out_dir="\"$out\"" --set data.train_glob="\"$train\"" --set data.val_glob="\"$val\"" \
  --set data.text_column=body >"$out/schema.log" 2>&1 && rc=0 || rc=$?
if [ $rc != 0 ] && grep -q "train-one.parquet: no column .body." "$out/schema.log"; then report wrong-schema ok "names the file and its columns"
else report wrong-schema FAIL "exit $rc"; fi
"$LMTRAIN" --config "$base" --set train.out_dir="\"$out\"" --set data.train_glob="\"$train\"" --set data.val_glob="\"$val\"" \
  --set tokenizer.path="\"$out/reference/tokenizer.json\"" --set model.vocab_size=300 >"$out/vocab.log" 2>&1 && rc=0 || rc=$?
if [ $rc != 0 ] && grep -q "reference/tokenizer.json has .* tokens but model.vocab_size = 300" "$out/vocab.log"; then report tokenizer-vocab-mismatch ok "names the tokenizer and the key"
else report tokenizer-vocab-mismatch FAIL "exit $rc"; fi

echo "fault_suite: $passes passed, $fails failed"
[ $fails = 0 ]
