#!/usr/bin/env bash
# Issue 18's bf16 numerics check: a training run's loss curve with a speed switch against the
# same run in f32 (same initial weights, same batches: lmtrain bench's fixed seed), and whether
# it stays within a stated band.
#
#   scripts/loss_band.sh [--config A|B|tiny] [--steps 300] [--every 10] [--device auto]
#       [--band 0.02] [-- VARIANT_FLAGS...]        (default variant: --matmul cublaslt)
#
# A and B are the benchmark shapes (A's 300 steps take seconds on a GPU, tens of minutes on a
# CPU); tiny (bench's default: 2 layers, d 64, seq 32, batch 8) checks the script in seconds.
#
# Prints both curves' LOSS lines, then
#   LOSS_BAND config=A steps=300 variant="--matmul cublaslt" max_rel_diff=… band=0.02
#             loss_last_f32=… loss_last_variant=… ok|FAIL
# max_rel_diff is the largest |L_variant − L_f32| / L_f32 over the sampled steps, each loss the
# mean of itself and its two sampled neighbours (single steps are noisy in bf16 and f32 alike).
# The band (default 2%) is about five times the bf16 rounding of one operand (2⁻⁸ ≈ 0.4%).
# Exit status 1 when the band is exceeded; 3 (LOSS_BAND … SKIP) when the variant asks for
# cuBLASLt and the run did not use it (no CUDA device, or no libcublasLt.so.13: the log says
# which), since the two curves would then be the same run. LMTRAIN=path overrides
# target/release/lmtrain.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=A STEPS=300 EVERY=10 DEVICE=auto BAND=0.02
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --every) EVERY=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --band) BAND=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "loss_band: unknown argument '$1' (use --config, --steps, --every, --device, --band, -- FLAGS)" >&2; exit 2 ;;
  esac
done
VARIANT=("$@")
[ ${#VARIANT[@]} -gt 0 ] || VARIANT=(--matmul cublaslt)
LMTRAIN=${LMTRAIN:-target/release/lmtrain}
[ -x "$LMTRAIN" ] || { echo "loss_band: $LMTRAIN is missing; run scripts/setup.sh (or cargo build --release)" >&2; exit 1; }
LOG_DIR=$(mktemp -d)
trap 'rm -rf "$LOG_DIR"' EXIT
common=(bench --steps "$STEPS" --warmup-steps 0 --no-clip-ema-line --loss-every "$EVERY" --device "$DEVICE")
case "$CONFIG" in
  A|a|B|b) common+=(--config "$CONFIG") ;;
  tiny) ;;
  *) echo "loss_band: --config $CONFIG: use A, B or tiny" >&2; exit 2 ;;
esac
"$LMTRAIN" "${common[@]}" --label f32 | tee "$LOG_DIR/f32.txt"
"$LMTRAIN" "${common[@]}" --label variant "${VARIANT[@]}" | tee "$LOG_DIR/variant.txt"
python3 - "$LOG_DIR/f32.txt" "$LOG_DIR/variant.txt" "$CONFIG" "$STEPS" "$BAND" "${VARIANT[*]}" <<'PY'
import sys
def curve(path):
    out = {}
    for line in open(path):
        if line.startswith("LOSS "):
            d = dict(x.split("=", 1) for x in line.split()[1:])
            out[int(d["step"])] = float(d["loss"])
    return out
a, b = curve(sys.argv[1]), curve(sys.argv[2])
def result(path):
    for line in open(path):
        if line.startswith("RESULT "):
            return dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
    return {}
if "cublaslt" in sys.argv[6] and result(sys.argv[2]).get("cublaslt") != "1":
    print(f'LOSS_BAND config={sys.argv[3]} steps={sys.argv[4]} variant="{sys.argv[6]}" SKIP: '
          "the variant's run did not use cuBLASLt (its log above says why)")
    sys.exit(3)
steps = sorted(set(a) & set(b))
if len(steps) < 3:
    sys.exit("loss_band: fewer than 3 common LOSS lines; did both runs finish?")
def smooth(c, i):
    w = steps[max(0, i - 1): i + 2]
    return sum(c[s] for s in w) / len(w)
diff = max(abs(smooth(b, i) - smooth(a, i)) / abs(smooth(a, i)) for i in range(len(steps)))
band = float(sys.argv[5])
last = steps[-1]
print(f'LOSS_BAND config={sys.argv[3]} steps={sys.argv[4]} variant="{sys.argv[6]}" '
      f'max_rel_diff={diff:.4f} band={band} loss_last_f32={a[last]:.4f} '
      f'loss_last_variant={b[last]:.4f} {"ok" if diff <= band else "FAIL"}')
sys.exit(0 if diff <= band else 1)
PY
