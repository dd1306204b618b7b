#!/usr/bin/env bash
# The GEMMs of one training step's linears, lmtrain (burn) beside PyTorch, on one device
# (issue 18's table for choosing the GPU matmul route):
#   lmtrain gemm-bench             burn_f32 (TF32 on cubecl), burn_bf16 (casts included),
#                                  cublaslt (the model's cuBLASLt op, casts and bias epilogues
#                                  included; lt_reference off CUDA)
#   scripts/gemm_bench_torch.py    torch_tf32, torch_bf16 (casts included)
# each GEMM's median of --reps timed runs in TFLOP/s with its error against float64 on sampled
# entries, then a table, and one line of step totals (each GEMM weighted by how often a step runs it):
#   GEMM_RATIO shape=S device=D burn_bf16_ms=… torch_bf16_ms=… bf16_ratio=<torch_ms/burn_ms>
#              burn_f32_ms=… torch_tf32_ms=… f32_ratio=<torch_ms/burn_ms>
# (a ratio above 1 means burn's GEMMs take less time than PyTorch's), and issue 18's decision:
#   GEMM_ROUTE shape=S burn_bf16_ms=… cublaslt_ms=… burn_vs_cublaslt=<cublaslt_ms/burn_bf16_ms>
#              cublaslt_vs_torch=<torch_bf16_ms/cublaslt_ms> decision=<stay_on_cubecl|switch_to_cublaslt>
#              (no decision when a cublaslt row says fallback=gemm: it timed burn's matmul)
# (stay on cubecl when burn's bf16 matmul reaches ≥ 0.6× cuBLASLt's speed over the step). Each repetition is timed
# between two device syncs, on both sides, so the smallest GEMMs include the launch latency.
#
#   scripts/gemm_bench.sh [--shape b|a|tiny] [--device cuda|cpu] [--reps 20] [--only SUBSTRING]
#
# Shape b is for a GPU: on the CPU it takes hours (--shape tiny checks the script in seconds).
# LMTRAIN=path overrides target/release/lmtrain; PYTHON=path a python with torch (default
# python3, or .venv-sac-bench/bin/python when python3 has no torch and that venv exists).
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=b
DEVICE=cuda
REPS=20
ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shape) SHAPE=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --only) ONLY=(--only "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "gemm_bench: unknown argument '$1' (use --shape, --device, --reps, --only)" >&2; exit 2 ;;
  esac
done
LMTRAIN=${LMTRAIN:-target/release/lmtrain}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  if ! python3 -c "import torch" 2>/dev/null && [ -x .venv-sac-bench/bin/python ]; then
    PYTHON=.venv-sac-bench/bin/python
  fi
fi
[ -x "$LMTRAIN" ] || { echo "gemm_bench: $LMTRAIN is missing; run scripts/setup.sh (or cargo build --release)" >&2; exit 1; }
# Checked first, so that a missing torch does not show only after the whole lmtrain pass.
"$PYTHON" -c "import torch" 2>/dev/null || {
  echo "gemm_bench: $PYTHON cannot import torch; set PYTHON to a python that has it (scripts/sac_bench.sh makes .venv-sac-bench/ with one)" >&2
  exit 1
}
case "$DEVICE" in
  cpu) TORCH_DEVICE=cpu ;;
  cuda|cuda:*) TORCH_DEVICE=$DEVICE ;;
  *) echo "gemm_bench: --device $DEVICE: use cuda, cuda:N or cpu" >&2; exit 2 ;;
esac

LOG_DIR=$(mktemp -d)
trap 'rm -rf "$LOG_DIR"' EXIT
# A failure part-way (the cuBLASLt implementation runs last, and has not run on a GPU before)
# keeps the lines printed so far: PyTorch's side and the table still come.
if ! "$LMTRAIN" gemm-bench --device "$DEVICE" --shape "$SHAPE" --reps "$REPS" "${ONLY[@]}" | tee "$LOG_DIR/burn.txt"; then
  echo "gemm_bench: lmtrain gemm-bench failed part-way; the table has the lines it printed" >&2
fi
"$PYTHON" scripts/gemm_bench_torch.py --device "$TORCH_DEVICE" --shape "$SHAPE" --reps "$REPS" "${ONLY[@]}" \
  | tee "$LOG_DIR/torch.txt"

python3 - "$LOG_DIR/burn.txt" "$LOG_DIR/torch.txt" "$SHAPE" "$DEVICE" <<'PY'
import sys

def parse(path):
    rows, steps = {}, {}
    for line in open(path):
        if not line.startswith(("GEMM ", "GEMM_STEP ")):
            continue  # e.g. "SKIP impl=burn_bf16: this device has no bf16"
        kind, *kv = line.split()
        d = dict(x.split("=", 1) for x in kv)
        if kind == "GEMM":
            rows[(d["impl"], d["gemm"])] = d
        elif kind == "GEMM_STEP":
            steps[d["impl"]] = float(d["step_ms"])
    return rows, steps

rows, steps = parse(sys.argv[1])
r2, s2 = parse(sys.argv[2])
rows.update(r2)
steps.update(s2)
impls = [i for i in ["burn_f32", "torch_tf32", "burn_bf16", "torch_bf16", "cublaslt", "lt_reference"]
         if any(k == i for (k, _) in rows)]
names = list(dict.fromkeys(g for (_, g) in rows))
print("\n| GEMM | m × n × k | count | " + " | ".join(f"{i} TFLOP/s (rel err)" for i in impls) + " |")
print("| --- | --- | ---: | " + " | ".join("---:" for _ in impls) + " |")
for g in names:
    any_row = next(rows[(i, g)] for i in impls if (i, g) in rows)
    cells = []
    for i in impls:
        d = rows.get((i, g))
        cells.append(f"{float(d['tflops']):.1f} ({float(d['rel_err']):.1e})" if d else "—")
    print(f"| {g} | {any_row['m']} × {any_row['n']} × {any_row['k']} | {any_row['count']} | " + " | ".join(cells) + " |")
def ratio(ref, ours):
    return f"{steps[ref] / steps[ours]:.3f}" if ref in steps and ours in steps else "n/a"
fmt = lambda i: f"{steps[i]:.3f}" if i in steps else "n/a"
print(f"\nGEMM_RATIO shape={sys.argv[3]} device={sys.argv[4]} burn_bf16_ms={fmt('burn_bf16')} "
      f"torch_bf16_ms={fmt('torch_bf16')} bf16_ratio={ratio('torch_bf16', 'burn_bf16')} "
      f"burn_f32_ms={fmt('burn_f32')} torch_tf32_ms={fmt('torch_tf32')} f32_ratio={ratio('torch_tf32', 'burn_f32')}")
fell_back = [g for (i, g), d in rows.items() if i == "cublaslt" and d.get("fallback") == "gemm"]
if "cublaslt" in steps and "burn_bf16" in steps:
    speed = steps["cublaslt"] / steps["burn_bf16"]
    decision = "stay_on_cubecl" if speed >= 0.6 else "switch_to_cublaslt"
    if fell_back:
        # Those rows timed the reference GEMM, not cuBLASLt: no decision from them.
        decision = f"n/a_{len(fell_back)}_gemms_fell_back_to_burn({','.join(fell_back)})"
    print(f"GEMM_ROUTE shape={sys.argv[3]} burn_bf16_ms={fmt('burn_bf16')} cublaslt_ms={fmt('cublaslt')} "
          f"burn_vs_cublaslt={speed:.3f} cublaslt_vs_torch={ratio('torch_bf16', 'cublaslt')} decision={decision}")
else:
    why = ("the cuBLASLt op ran its reference GEMMs (lt_reference): cuBLASLt runs only on CUDA"
           if "lt_reference" in steps else "no cublaslt rows (see the SKIP line above)")
    print(f"GEMM_ROUTE shape={sys.argv[3]} decision=n/a: {why}")
PY
