#!/usr/bin/env python3
"""Write the tiny-GPT numerics fixture used by the Rust tests (in the spirit of llm.c's test_gpt2).

Run:  .venv-torch/bin/python scripts/make_fixture.py [--out tests/fixtures/gpt_tiny.safetensors]

The model is written functionally rather than with nn.Module so that every operation, and the
Hugging Face GPT-2 parameter layout ([in, out] Conv1D weights, LM head tied to wte), is spelled
out in one place that the Rust implementation can be checked against line by line.
"""

import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

# The Rust side parses this JSON; its keys are the contract, so keep them exactly as they are.
CONFIG = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 32,
    "block_size": 16,
    "vocab_size": 64,
    "lr": 1e-2,
    "beta1": 0.9,
    "beta2": 0.95,
    "eps": 1e-8,
    "weight_decay": 0.1,
    # Small on purpose so that clipping is active at every step and its arithmetic gets tested.
    "grad_clip": 0.05,
    "grad_accum": 2,
    "schedule": "cosine",
    "warmup_steps": 3,
    "decay_steps": 7,
    "min_lr": 1e-3,
    "steps": 10,
    "ema_power": 0.5,
    "ema_offset": 2,
    "ema_burn_in": 4,
    "ema_min_beta": 0.0,
    "ema_every": 1,
    "micro_batch_size": 2,
    "ln_eps": 1e-5,
}

BATCH = CONFIG["micro_batch_size"] * CONFIG["grad_accum"]  # 4
SEQ = CONFIG["block_size"]  # 16
INIT_SEED = 1337
DATA_SEED = 4242


def param_shapes(cfg):
    """Parameter names and shapes in a fixed order; the order fixes which random draws go where."""
    C, V, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_layer"]
    shapes = [
        ("transformer.wte.weight", (V, C)),
        ("transformer.wpe.weight", (cfg["block_size"], C)),
    ]
    for i in range(L):
        p = f"transformer.h.{i}."
        shapes += [
            (p + "ln_1.weight", (C,)),
            (p + "ln_1.bias", (C,)),
            (p + "attn.c_attn.weight", (C, 3 * C)),
            (p + "attn.c_attn.bias", (3 * C,)),
            (p + "attn.c_proj.weight", (C, C)),
            (p + "attn.c_proj.bias", (C,)),
            (p + "ln_2.weight", (C,)),
            (p + "ln_2.bias", (C,)),
            (p + "mlp.c_fc.weight", (C, 4 * C)),
            (p + "mlp.c_fc.bias", (4 * C,)),
            (p + "mlp.c_proj.weight", (4 * C, C)),
            (p + "mlp.c_proj.bias", (C,)),
        ]
    shapes += [
        ("transformer.ln_f.weight", (C,)),
        ("transformer.ln_f.bias", (C,)),
    ]
    return shapes


def init_params(cfg, gen):
    # Not GPT-2's pristine init (zero biases, unit LN weights): non-trivial values make every
    # gradient path, including the bias and layer-norm affine ones, contribute to the numbers.
    resid_std = 0.02 / math.sqrt(2 * cfg["n_layer"])
    params = {}
    for name, shape in param_shapes(cfg):
        if ".ln_" in name:
            if name.endswith(".weight"):
                t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
            else:
                t = 0.05 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            t = 0.02 * torch.randn(shape, generator=gen)
        elif name.endswith("c_proj.weight"):
            t = resid_std * torch.randn(shape, generator=gen)
        else:
            t = 0.02 * torch.randn(shape, generator=gen)
        params[name] = t.to(torch.float32).contiguous().requires_grad_(True)
    return params


def forward(params, idx, cfg):
    B, T = idx.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    hd = C // H
    eps = cfg["ln_eps"]

    wte = params["transformer.wte.weight"]
    x = wte[idx] + params["transformer.wpe.weight"][torch.arange(T)]
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        h = F.layer_norm(x, (C,), params[p + "ln_1.weight"], params[p + "ln_1.bias"], eps)
        qkv = h @ params[p + "attn.c_attn.weight"] + params[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        att = att.masked_fill(~causal, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + (y @ params[p + "attn.c_proj.weight"] + params[p + "attn.c_proj.bias"])

        h = F.layer_norm(x, (C,), params[p + "ln_2.weight"], params[p + "ln_2.bias"], eps)
        h = F.gelu(h @ params[p + "mlp.c_fc.weight"] + params[p + "mlp.c_fc.bias"])
        x = x + (h @ params[p + "mlp.c_proj.weight"] + params[p + "mlp.c_proj.bias"])

    x = F.layer_norm(
        x, (C,), params["transformer.ln_f.weight"], params["transformer.ln_f.bias"], eps
    )
    return x @ wte.T


def loss_fn(params, idx, tgt, cfg):
    logits = forward(params, idx, cfg)
    V = cfg["vocab_size"]
    return logits, F.cross_entropy(logits.view(-1, V), tgt.view(-1))


def lr_at(t, cfg):
    """Learning rate at 1-based optimizer step t."""
    lr, warm = cfg["lr"], cfg["warmup_steps"]
    if t <= warm:
        return lr * t / warm
    progress = min(1.0, (t - warm) / cfg["decay_steps"])
    return cfg["min_lr"] + 0.5 * (lr - cfg["min_lr"]) * (1.0 + math.cos(math.pi * progress))


def ema_beta(t, cfg):
    """Weight on the new iterate at step t (> burn_in); Block et al. 2024's power-law EMA."""
    rho, t0, kappa = cfg["ema_offset"], cfg["ema_burn_in"], cfg["ema_power"]
    return max(cfg["ema_min_beta"], (rho + t - t0) ** (-kappa))


def fail(msg):
    print(f"make_fixture: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def canonicalize_header(path):
    """Sort the metadata entries in the file's JSON header, in place.

    safetensors keeps the metadata in a hash map, so the order of its two entries (and hence the
    file's bytes) changes from run to run; sorting them makes a regenerated fixture byte-identical
    to the committed one. Only the header is rewritten, padded with spaces to its old length as
    the format allows, so no tensor offset moves.
    """
    with open(path, "r+b") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n), object_pairs_hook=dict)
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(raw) > n:
            fail(f"canonical header is {len(raw)} bytes, longer than the original {n}")
        fh.seek(8)
        fh.write(raw + b" " * (n - len(raw)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures/gpt_tiny.safetensors")
    args = ap.parse_args()

    # Bit-for-bit reproducible output: a committed fixture must not change when regenerated on
    # another machine, and multi-threaded reductions can reorder float sums.
    torch.manual_seed(INIT_SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    cfg = CONFIG
    names = [n for n, _ in param_shapes(cfg)]

    params = init_params(cfg, torch.Generator().manual_seed(INIT_SEED))
    init = {n: p.detach().clone() for n, p in params.items()}

    data_gen = torch.Generator().manual_seed(DATA_SEED)
    V = cfg["vocab_size"]
    inp = torch.randint(0, V, (BATCH, SEQ), generator=data_gen, dtype=torch.int64)
    tgt = torch.randint(0, V, (BATCH, SEQ), generator=data_gen, dtype=torch.int64)

    # Reference forward/backward at the initial weights, on the whole batch at once.
    logits0, loss0 = loss_fn(params, inp, tgt, cfg)
    loss0.backward()
    grads0 = {n: params[n].grad.detach().clone() for n in names}
    logits0 = logits0.detach().clone()
    loss0 = loss0.detach().reshape(1).clone()
    full_grad_norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads0.values())).item()
    for p in params.values():
        p.grad = None

    # nanoGPT's grouping: every tensor with dim >= 2 (embeddings included) is decayed.
    decay = [params[n] for n in names if params[n].dim() >= 2]
    no_decay = [params[n] for n in names if params[n].dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg["lr"],
        betas=(cfg["beta1"], cfg["beta2"]),
        eps=cfg["eps"],
        foreach=False,
        fused=False,
    )
    all_params = [params[n] for n in names]

    mb, accum = cfg["micro_batch_size"], cfg["grad_accum"]
    losses, lrs, norms = [], [], []
    ema = None
    for t in range(1, cfg["steps"] + 1):
        lr_t = lr_at(t, cfg)
        for g in opt.param_groups:
            g["lr"] = lr_t
        opt.zero_grad(set_to_none=True)

        micro_losses = []
        for m in range(accum):
            sl = slice(m * mb, (m + 1) * mb)
            _, loss_m = loss_fn(params, inp[sl], tgt[sl], cfg)
            (loss_m / accum).backward()
            micro_losses.append(loss_m.item())
        step_loss = sum(micro_losses) / accum

        total_norm = torch.nn.utils.clip_grad_norm_(
            all_params, cfg["grad_clip"], foreach=False
        ).item()
        opt.step()

        losses.append(step_loss)
        lrs.append(lr_t)
        norms.append(total_norm)

        with torch.no_grad():
            if t <= cfg["ema_burn_in"] or ema is None:
                ema = {n: params[n].detach().clone() for n in names}
            elif (t % cfg["ema_every"]) == 0:
                b = ema_beta(t, cfg)
                for n in names:
                    ema[n].mul_(1.0 - b).add_(params[n].detach(), alpha=b)

    final = {n: params[n].detach().clone() for n in names}

    # Sanity checks: a fixture that silently fails to exercise a feature would test nothing.
    if not losses[-1] < losses[0]:
        fail(f"loss did not decrease: first {losses[0]:.6f}, last {losses[-1]:.6f}")
    if not min(losses[-3:]) < min(losses[:3]):
        fail("loss did not decrease overall")
    n_clipped = sum(n > cfg["grad_clip"] for n in norms)
    if n_clipped < len(norms) // 2 + 1:
        fail(f"clipping fired at only {n_clipped}/{len(norms)} steps")
    # Equal-size micro-batches make the accumulated step-1 gradient the full-batch gradient.
    if not math.isclose(norms[0], full_grad_norm, rel_tol=1e-4):
        fail(f"step-1 grad norm {norms[0]} != full-batch grad norm {full_grad_norm}")
    if not math.isclose(losses[0], loss0.item(), rel_tol=1e-5):
        fail(f"step-1 loss {losses[0]} != full-batch loss {loss0.item()}")
    ema_diff = max((ema[n] - final[n]).abs().max().item() for n in names)
    if not ema_diff > 1e-6:
        fail(f"EMA equals the final parameters (max |diff| {ema_diff})")
    moved = max((final[n] - init[n]).abs().max().item() for n in names)
    if not moved > 1e-4:
        fail("parameters barely moved")
    for n in names:
        for label, d in (("grad", grads0), ("final", final), ("ema", ema)):
            if not torch.isfinite(d[n]).all():
                fail(f"{label}.{n} has non-finite values")

    tensors = {}
    for n in names:
        tensors[f"param.{n}"] = init[n]
    tensors["input"] = inp
    tensors["target"] = tgt
    tensors["logits"] = logits0
    tensors["loss"] = loss0
    for n in names:
        tensors[f"grad.{n}"] = grads0[n]
    tensors["losses"] = torch.tensor(losses, dtype=torch.float32)
    tensors["lrs"] = torch.tensor(lrs, dtype=torch.float32)
    tensors["grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    for n in names:
        tensors[f"final.{n}"] = final[n]
        tensors[f"ema.{n}"] = ema[n]
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    for k, v in tensors.items():
        want = torch.int64 if k in ("input", "target") else torch.float32
        assert v.dtype == want, (k, v.dtype)

    metadata = {
        "config": json.dumps(cfg),
        "generator": f"scripts/make_fixture.py, torch {torch.__version__}",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(tensors, args.out, metadata=metadata)
    canonicalize_header(args.out)
    with safe_open(args.out, "pt") as fh:
        if fh.metadata() != metadata or sorted(fh.keys()) != sorted(tensors):
            fail("the written file does not read back as written")
        for k in fh.keys():
            if not torch.equal(fh.get_tensor(k), tensors[k]):
                fail(f"tensor {k} does not read back as written")

    n_params = sum(init[n].numel() for n in names)
    print(f"torch {torch.__version__}; {len(names)} parameter tensors, {n_params} parameters")
    print(f"initial full-batch loss {loss0.item():.6f} (ln {V} = {math.log(V):.6f})")
    print(f"initial full-batch grad norm {full_grad_norm:.6f}")
    print(" step        lr      loss   grad_norm  clipped")
    for i, (l, r, g) in enumerate(zip(losses, lrs, norms), start=1):
        print(f"{i:5d}  {r:.6f}  {l:.6f}  {g:.6f}  {'yes' if g > cfg['grad_clip'] else 'no'}")
    print(f"clipping fired at {n_clipped}/{len(norms)} steps (grad_clip {cfg['grad_clip']})")
    print(f"max |ema - final| {ema_diff:.3e}; max |final - init| {moved:.3e}")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
