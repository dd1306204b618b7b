#!/usr/bin/env python3
"""Per-kernel time of one lmtrain training step, grouped by cause.

Reads the log that `lmtrain bench --profile FILE` writes (cubecl's profiler: one
"| duration | kernel" line per launch in launch order, and a summary table at every device
sync) and attributes the launches of the last step.

    python3 scripts/profile_breakdown.py profile-A.log [--layers 6] [--markdown] [--by-family]

A log whose matmul counts do not fit the rules below, such as one with the linears on cuBLASLt
(`--matmul cublaslt`: those GEMMs are not cubecl launches, so the profiler does not see them),
gets a coarser table instead, by phase and kernel family, with a note on stderr; --by-family
asks for that table on any log.

Phases. Since session 5, `bench --profile` syncs the device after each step's forward and
backward passes, so a step is three segments of the log: forward, backward, update (the update
has no matmul, which is how such a log is recognised). An older log (session 2's) has one
segment a step; its phases are then found by kernel names: forward = up to the cross-entropy
gather (the first gather after a matmul), backward = up to the embedding backward
(SelectAssignKernel, the serial scatter of the token-embedding gradient), optimizer = after.

How a launch is attributed (kernel names are fused-kernel hashes, so the cause comes from where
a launch sits in its phase, not from its name alone):
  * forward: each block launches its matmuls in a fixed order: qkv, QKᵀ, AV, attention proj,
    MLP fc (GELU fused), MLP proj; with `--flash-attention` QKᵀ and AV are one `Attention`
    kernel instead, so a block has 4 matmuls. Launches after qkv up to the attention proj
    (head split/merge copies, scale+mask, softmax, the flash kernel) are attention; launches
    after the attention proj and after the MLP proj are LayerNorm (with the residual add);
    before the first matmul, embedding + the first LayerNorm; after the head matmul,
    cross-entropy. The layer count is the number of `Attention` kernels, else (matmuls - 1)/6.
  * backward: up to the head's two matmuls, cross-entropy; the last scatter (select-assign,
    or the scatter-add of `--gather-embedding`) is the embedding backward. Each block then
    launches 12 matmuls (plain attention: MLP proj, MLP fc, attention proj, dX and dW each;
    attention's 4; qkv dX and dW) or 13 (the fused attention op of `--fused-attention`, `--fused`
    and `--flash-attention`, whose backward recomputes QKᵀ: its 5 matmuls are positions 7-11 of
    each 13, and every launch between them is attention); the count tells which. With 12, a
    matmul next to a copy/pack kernel is attention's. Copies, slice assigns and the fills that
    feed them are attention (head split/merge, the qkv split, causal mask). Reductions are bias and
    LayerNorm gradient sums; the rest is element-wise gradient arithmetic (LayerNorm, GELU,
    softmax, residual).
  * update: AdamW (and the clip and EMA when the bench runs them).
The rules were checked on real logs of every variant: session 2's plain logs of configs A and B
(H200) and, since session 5, logs of plain, `--fused`, `--flash-attention` and both, made on
burn's cubecl route on Mesa's lavapipe (the same burn and cubecl kernels and fusion; only the
matmul tiling differs). Another build or model may launch differently; a matmul count that fits
no rule stops the script with an error rather than guess.
"""
import argparse
import re
import sys

UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
LINE = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")


def segments(lines):
    """The launches (ms, name) between consecutive summary tables, empty ones dropped."""
    segs, cur, in_table = [], [], False
    for line in lines:
        if line.startswith("| Name"):
            in_table = True
            segs.append(cur)
            cur = []
            continue
        if in_table:
            if line.startswith("| Total"):
                in_table = False
            continue
        m = LINE.match(line)
        if m:
            cur.append((float(m.group(1)) * UNITS[m.group(2)], m.group(3)))
    return [s for s in segs if s]


class Unplaced(Exception):
    """The launches do not fit the attribution rules (e.g. the linears ran outside cubecl)."""


def family(name):
    if name.startswith("MatmulEntry"):
        return "matmul"
    for prefix, fam in [
        ("Attention", "flash"),
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


def last_step_phases(segs):
    """(forward, backward, update) launch lists of the last step."""
    if not segs:
        sys.exit("no complete step in the log (was it written by lmtrain bench --profile?)")
    if len(segs) >= 3 and not any(family(n) == "matmul" for _, n in segs[-1]):
        return segs[-3], segs[-2], segs[-1]
    # An unmarked log: one segment a step, split by kernel names.
    step = segs[-1]
    fams = [family(n) for _, n in step]
    try:
        first_mm = fams.index("matmul")
        gather = next(i for i in range(first_mm, len(fams)) if fams[i] == "gather")
        emb_bwd = max(i for i, f in enumerate(fams) if f in ("select_assign", "scatter"))
    except (ValueError, StopIteration):
        sys.exit("cannot find the cross-entropy gather or the embedding backward in the step")
    return step[: gather + 1], step[gather + 1 : emb_bwd + 1], step[emb_bwd + 1 :]


def count_layers(forward):
    fams = [family(n) for _, n in forward]
    flash = fams.count("flash")
    return flash if flash else (fams.count("matmul") - 1) // 6


def attribute_forward(fams, layers):
    per_block = 4 if "flash" in fams else 6
    # What follows each matmul of a block, by its position in the block.
    after = ["attention", "attention", "attention", "LayerNorm", "LayerNorm", "LayerNorm"]
    if per_block == 4:
        after = ["attention", "LayerNorm", "LayerNorm", "LayerNorm"]
    if fams.count("matmul") != per_block * layers + 1:
        raise Unplaced(f"forward: expected {per_block * layers + 1} matmuls for {layers} "
                       f"layers, found {fams.count('matmul')}")
    causes, mm, region = [], 0, "embedding + LayerNorm"
    for f in fams:
        if f == "matmul":
            mm += 1
            if mm > per_block * layers:
                causes.append("matmul (linear)")
                region = "cross-entropy"
                continue
            k = (mm - 1) % per_block
            causes.append("attention" if per_block == 6 and k in (1, 2) else "matmul (linear)")
            region = after[k]
            continue
        if per_block == 6 and region == "attention" and mm % 6 == 3 and f != "copy":
            # Past the head merge that follows AV: the attention projection comes next.
            region = "LayerNorm"
        causes.append("cross-entropy" if f == "gather" else region)
    return causes


def attribute_backward(fams, layers):
    mms = [i for i, f in enumerate(fams) if f == "matmul"]
    blocks = mms[2:]  # after the head's dX, dW
    if len(blocks) == 13 * layers:
        spans = [(blocks[13 * b + 6], blocks[13 * b + 10]) for b in range(layers)]
    elif len(blocks) == 12 * layers:
        spans = None
    else:
        raise Unplaced(f"backward: expected 12 or 13 matmuls a block after the head's 2 for "
                       f"{layers} layers, found {len(blocks)}")
    emb_bwd = max(i for i, f in enumerate(fams) if f in ("select_assign", "scatter"))
    causes = []
    for i, f in enumerate(fams):
        nxt = fams[i + 1] if i + 1 < len(fams) else None
        if i < mms[0]:
            causes.append("cross-entropy")
        elif i == emb_bwd:
            causes.append("embedding backward")
        elif spans is not None and any(a <= i <= b for a, b in spans):
            causes.append("attention")
        elif f == "matmul":
            near = {fams[j] for j in (i - 1, i + 1) if 0 <= j < len(fams)}
            causes.append("attention" if spans is None and "copy" in near else "matmul (linear)")
        elif f == "copy" or (f == "fill" and nxt == "copy"):
            causes.append("attention")
        elif f == "reduce":
            causes.append("bias/LayerNorm grad sums")
        else:
            causes.append("element-wise grads")
    return causes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log")
    ap.add_argument("--layers", type=int, help="transformer blocks (default: from the forward pass)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--by-family", action="store_true",
                    help="phase × kernel family, without the attribution rules (what a log they "
                         "do not fit gets, e.g. one with the linears on cuBLASLt)")
    a = ap.parse_args()
    # The profiler cuts long kernel names inside multi-byte characters.
    with open(a.log, encoding="utf-8", errors="replace") as fh:
        forward, backward, update = last_step_phases(segments(fh.read().splitlines()))
    layers = a.layers or count_layers(forward)
    try:
        if a.by_family:
            raise Unplaced("--by-family")
        causes = (attribute_forward([family(n) for _, n in forward], layers)
                  + attribute_backward([family(n) for _, n in backward], layers)
                  + ["optimizer (AdamW)"] * len(update))
    except Unplaced as why:
        # Coarser, but true of any log: phase × kernel family. A cuBLASLt run
        # (model.matmul = "cublaslt") lands here: its linears are not cubecl launches, so the
        # profiler does not see them, and the step's time minus this total is theirs.
        print(f"[profile_breakdown] {why}: by phase and kernel family instead (with "
              "model.matmul = \"cublaslt\" the linears' GEMMs are not in the log; their time "
              "is the step's minus the total below)", file=sys.stderr)
        causes = ([f"forward: {family(n)}" for _, n in forward]
                  + [f"backward: {family(n)}" for _, n in backward]
                  + ["optimizer (AdamW)"] * len(update))
    step = forward + backward + update
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
        print(f"{'total':28s} {len(step):5d} launches {total:9.3f} ms ({layers} layers)")


if __name__ == "__main__":
    main()
