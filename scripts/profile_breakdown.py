#!/usr/bin/env python3
"""Per-kernel time of one lmtrain training step, grouped by cause.

Reads the log that `lmtrain bench --profile FILE` writes (cubecl's profiler: one
"| duration | kernel" line per launch in launch order, then a summary table at every device
sync, i.e. once per step) and takes the launches of the last complete step.

    python3 scripts/profile_breakdown.py profile-A.log [--layers 6] [--markdown] [--fused-attention]

How a launch is attributed (kernel names are fused-kernel hashes, so the cause comes from
where a launch sits in the step, not from its name alone):
  * phases: forward = up to the cross-entropy gather (the first gather after a matmul: with
    `--gather-embedding` the embedding is a gather too); backward = up to the embedding backward
    (SelectAssignKernel, the serial scatter of the token-embedding gradient, or with
    `--gather-embedding` the last scatter); optimizer = after.
  * forward: each block launches 6 matmuls in a fixed order (qkv, QKᵀ, AV, attention proj,
    MLP fc with GELU fused, MLP proj). Launches after qkv up to the head merge after AV are
    attention (head split/merge copies, scale+mask, softmax); launches after the attention proj
    and after the MLP proj are LayerNorm (with the residual add); before the first matmul,
    embedding + the first LayerNorm; after the head matmul, cross-entropy.
  * backward: up to the head's two matmuls, cross-entropy; matmuls next to a copy/pack
    kernel are attention's batched matmuls, others the linears' dX/dW; copies, packs, slice
    assigns and fills are attention (head split/merge, causal mask); reductions are bias and
    LayerNorm gradient sums; the rest is element-wise gradient arithmetic (LayerNorm, GELU,
    softmax, residual).
  * `--fused-attention` (a log of `bench --fused` or `--fused-attention`): the attention op's
    backward launches its 5 matmuls together (QKᵀ recomputed, dV, dP, dQ, dK), so after the
    head's 2 backward matmuls each block has 13 (MLP proj, MLP fc, attention proj: dX and dW each;
    the attention's 5; qkv dX and dW): positions 7-11 of each group of 13, and every launch
    between them, are attention. This rule is written from the op's code, not yet checked on a
    real log.
The forward rules were read off configs A and B on one build (burn 0.22.1, cubecl 0.11.3);
another build or model may launch differently, which the "unattributed" row would show.
"""
import argparse
import re
import sys

UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
LINE = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")


def last_step(lines):
    """The launches (ms, name) between the last two summary tables."""
    steps, cur, in_table = [], [], False
    for line in lines:
        if line.startswith("| Name"):
            in_table = True
            steps.append(cur)
            cur = []
            continue
        if in_table:
            if line.startswith("| Total"):
                in_table = False
            continue
        m = LINE.match(line)
        if m:
            cur.append((float(m.group(1)) * UNITS[m.group(2)], m.group(3)))
    steps = [s for s in steps if s]
    if not steps:
        sys.exit("no complete step in the log (was it written by lmtrain bench --profile?)")
    return steps[-1]


def family(name):
    if name.startswith("MatmulEntry"):
        return "matmul"
    for prefix, fam in [
        ("SelectAssignKernel", "select_assign"),
        ("GatherKernel", "gather"),
        ("ScatterAdd", "scatter"),
        ("CopyKernel", "copy"),
        ("SliceAssignKernel", "copy"),
        ("FullKernel", "fill"),
        ("ReduceKernel", "reduce"),
        ("SharedSumKernel", "reduce"),
        ("CumulativeKernel", "reduce"),
    ]:
        if name.startswith(prefix):
            return fam
    return "elementwise"


def phase_ends(fams):
    """Indices of the cross-entropy gather (end of the forward) and of the embedding backward."""
    try:
        first_mm = fams.index("matmul")
        gather = next(i for i in range(first_mm, len(fams)) if fams[i] == "gather")
        emb_bwd = max(i for i, f in enumerate(fams) if f in ("select_assign", "scatter"))
    except (ValueError, StopIteration):
        sys.exit("cannot find the cross-entropy gather or the embedding backward in the step")
    return gather, emb_bwd


def fused_attention_spans(fams, start, end, layers):
    """(first, last) launch index of each block's attention backward, by counting matmuls."""
    mms = [i for i in range(start, end) if fams[i] == "matmul"][2:]  # after the head's dX, dW
    if len(mms) != 13 * layers:
        sys.exit(f"--fused-attention: expected {13 * layers} backward matmuls after the head's, "
                 f"found {len(mms)}")
    return [(mms[13 * b + 6], mms[13 * b + 10]) for b in range(layers)]


def attribute(step, layers, fused_attention=False):
    fams = [family(n) for _, n in step]
    gather, emb_bwd = phase_ends(fams)
    causes = []
    # Forward.
    mm = 0
    region = "embedding + LayerNorm"
    for i in range(gather + 1):
        f = fams[i]
        if f == "matmul":
            mm += 1
            if mm > 6 * layers:
                causes.append("matmul (linear)")
                region = "cross-entropy"
                continue
            k = (mm - 1) % 6
            causes.append("attention" if k in (1, 2) else "matmul (linear)")
            region = {0: "attention", 1: "attention", 2: "attention", 3: "LayerNorm",
                      4: "LayerNorm", 5: "LayerNorm"}[k]
            continue
        if region == "attention" and mm % 6 == 3 and f != "copy":
            # Past the head merge that follows AV: the attention projection comes next.
            region = "LayerNorm"
        causes.append("cross-entropy" if f == "gather" else region)
    # Backward.
    first_bwd_mm = next(i for i in range(gather + 1, emb_bwd) if fams[i] == "matmul")
    spans = fused_attention_spans(fams, gather + 1, emb_bwd, layers) if fused_attention else []
    for i in range(gather + 1, emb_bwd + 1):
        f = fams[i]
        if i < first_bwd_mm:
            causes.append("cross-entropy")
        elif i == emb_bwd:
            causes.append("embedding backward")
        elif spans:
            if any(a <= i <= b for a, b in spans):
                causes.append("attention")
            elif f == "matmul":
                causes.append("matmul (linear)")
            elif f == "reduce":
                causes.append("bias/LayerNorm grad sums")
            else:
                causes.append("element-wise grads")
        elif f == "matmul":
            near = {fams[j] for j in (i - 1, i + 1) if 0 <= j < len(fams)}
            causes.append("attention" if "copy" in near else "matmul (linear)")
        elif f in ("copy", "fill"):
            causes.append("attention")
        elif f == "reduce":
            causes.append("bias/LayerNorm grad sums")
        else:
            causes.append("element-wise grads")
    # Optimizer.
    causes.extend("optimizer (AdamW)" for _ in range(emb_bwd + 1, len(step)))
    return causes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log")
    ap.add_argument("--layers", type=int, help="transformer blocks (default: from the matmul count)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--fused-attention", action="store_true",
                    help="the log is of a run with the fused attention op (bench --fused)")
    a = ap.parse_args()
    with open(a.log, encoding="utf-8") as fh:
        step = last_step(fh.read().splitlines())
    fams = [family(n) for _, n in step]
    if a.layers is None:
        fwd_mm = sum(1 for f in fams[: phase_ends(fams)[0]] if f == "matmul")
        a.layers = (fwd_mm - 1) // 6
    causes = attribute(step, a.layers, a.fused_attention)
    total = sum(ms for ms, _ in step)
    rows = {}
    for (ms, _), c in zip(step, causes):
        n, t = rows.get(c, (0, 0.0))
        rows[c] = (n + 1, t + ms)
    order = sorted(rows.items(), key=lambda kv: -kv[1][1])
    if a.markdown:
        print("| cause | launches | ms | share |")
        print("|---|---:|---:|---:|")
        for c, (n, t) in order:
            print(f"| {c} | {n} | {t:.2f} | {100 * t / total:.1f}% |")
        print(f"| **total kernel time** | {len(step)} | {total:.2f} | 100% |")
    else:
        for c, (n, t) in order:
            print(f"{c:28s} {n:5d} launches {t:9.3f} ms {100 * t / total:5.1f}%")
        print(f"{'total':28s} {len(step):5d} launches {total:9.3f} ms ({a.layers} layers)")


if __name__ == "__main__":
    main()
