#!/usr/bin/env python3
"""PyTorch's side of scripts/gemm_bench.sh: the GEMMs of one training step's linears, timed one by one.

    python3 scripts/gemm_bench_torch.py [--shape b|a|tiny] [--device cuda|cpu] [--reps 20] [--warmup 3]
                                        [--samples 32] [--only SUBSTRING]

The same GEMM list as `lmtrain gemm-bench` (src/bench/gemm.rs): for qkv, proj, fc, fc_proj (once
per layer) and the tied LM head (once), the forward product, dX = dY·Wᵀ and dW = Xᵀ·dY, with
the operands stored as the model stores them. Implementations:
  torch_bf16  a.to(bf16) @ b.to(bf16), the product .float(): casts included, as autocast pays them
  torch_tf32  f32 operands with torch.backends.cuda.matmul.allow_tf32 = True (cuBLAS TF32, what
              burn's f32 matmul does implicitly on the GPU); on the CPU plain f32
Prints one line per GEMM and implementation, in lmtrain's format:
  GEMM impl=... gemm=... m= n= k= trans_a= trans_b= count= median_ms= tflops= rel_err=
and GEMM_STEP impl=... shape=... gemms=... step_ms=... tflops=... (each GEMM weighted by count).
rel_err: max|C - C_ref| / max|C_ref| over sampled rows x sampled columns, C_ref in float64.
"""
import argparse
import statistics
import sys
import time

SHAPES = {
    # layers, width, tokens per step (batch x sequence), vocabulary: configs A and B of
    # ../shared/bench/torch_gpt_bench.py, and a tiny one for tests.
    "a": (6, 384, 64 * 256, 8192),
    "b": (12, 768, 16 * 1024, 50304),
    "tiny": (2, 16, 24, 40),
}


def gemms(shape):
    layers, d, t, v = SHAPES[shape]
    out = []
    for name, i, o in (("qkv", d, 3 * d), ("proj", d, d), ("fc", d, 4 * d), ("fc_proj", 4 * d, d)):
        out += [
            (f"{name}.fwd", t, o, i, False, False, layers),
            (f"{name}.dx", t, i, o, False, True, layers),
            (f"{name}.dw", i, o, t, True, False, layers),
        ]
    out += [
        ("lm_head.fwd", t, v, d, False, True, 1),
        ("lm_head.dx", t, d, v, False, False, 1),
        ("lm_head.dw", v, d, t, True, False, 1),
    ]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="b", choices=sorted(SHAPES), help="model shape (default b)")
    ap.add_argument("--device", default="cuda", help="torch device: cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per GEMM; the median is reported")
    ap.add_argument("--warmup", type=int, default=3, help="untimed repetitions first")
    ap.add_argument("--samples", type=int, default=32, help="rows and columns of C sampled for rel_err")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", default=None, help="only the GEMMs whose name contains this (e.g. lm_head, .dw)")
    args = ap.parse_args()
    if args.reps < 1 or args.samples < 1:
        sys.exit("gemm_bench_torch: --reps and --samples must be at least 1")
    try:
        import torch
    except ImportError:
        sys.exit("gemm_bench_torch: torch is not importable by this python; set PYTHON to one that has it")
    try:
        dev = torch.device(args.device)
    except RuntimeError as e:
        sys.exit(f"gemm_bench_torch: --device {args.device!r}: {e}")
    if dev.type not in ("cuda", "cpu"):
        sys.exit(f"gemm_bench_torch: --device {args.device!r}: use cuda, cuda:N or cpu")
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("gemm_bench_torch: --device cuda but torch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(args.seed)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f"gemm_bench_torch: torch {torch.__version__} on {dev}"
          + (f" ({torch.cuda.get_device_name(dev)})" if cuda else ""), file=sys.stderr)
    todo = [g for g in gemms(args.shape) if args.only is None or args.only in g[0]]
    if not todo:
        sys.exit(f"gemm_bench_torch: --only {args.only!r} matches none of the GEMMs")
    for impl in ("torch_tf32", "torch_bf16"):
        step_ms, step_flops = 0.0, 0.0
        for name, m, n, k, ta, tb, count in todo:
            a_buf = torch.randn((k, m) if ta else (m, k), device=dev)
            b_buf = torch.randn((n, k) if tb else (k, n), device=dev)

            def run():
                a = a_buf.t() if ta else a_buf
                b = b_buf.t() if tb else b_buf
                if impl == "torch_bf16":
                    return (a.to(torch.bfloat16) @ b.to(torch.bfloat16)).float()
                return a @ b

            for _ in range(args.warmup):
                run()
            sync()
            times = []
            c = None
            for _ in range(args.reps):
                sync()
                t0 = time.perf_counter()
                c = run()
                sync()
                times.append((time.perf_counter() - t0) * 1e3)
            g = torch.Generator().manual_seed(args.seed ^ m ^ (n << 20))
            rows = torch.randint(0, m, (min(args.samples, m),), generator=g)
            cols = torch.randint(0, n, (min(args.samples, n),), generator=g)
            # Only the sampled rows of op(A) and columns of op(B) go to float64.
            a = (a_buf.t() if ta else a_buf)[rows.to(dev)].double()
            b = (b_buf.t() if tb else b_buf)[:, cols.to(dev)].double()
            ref = (a @ b).cpu()
            got = c[rows.to(dev)][:, cols.to(dev)].double().cpu()
            rel = float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-300))
            ms = statistics.median(times)
            flops = 2.0 * m * n * k
            print(f"GEMM impl={impl} gemm={name} m={m} n={n} k={k} trans_a={int(ta)} trans_b={int(tb)} "
                  f"count={count} median_ms={ms:.4f} tflops={flops / (ms * 1e-3) / 1e12:.2f} rel_err={rel:.3e}",
                  flush=True)
            step_ms += ms * count
            step_flops += flops * count
            del a_buf, b_buf, c, a, b
        print(f"GEMM_STEP impl={impl} shape={args.shape} gemms={len(todo)} step_ms={step_ms:.3f} "
              f"tflops={step_flops / (step_ms * 1e-3) / 1e12:.2f}", flush=True)


if __name__ == "__main__":
    main()
