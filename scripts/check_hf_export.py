#!/usr/bin/env python3
"""Checks lmtrain's Hugging Face export and import against transformers itself.

    python3 scripts/check_hf_export.py [--checkpoint RUN_DIR|FILE] [--write-fixture]

Run it from anywhere with any python3 >= 3.9: it creates .venv-hf-check/ (torch, transformers,
safetensors and numpy from PyPI; about 3 GB, since PyPI's x86_64 torch is the CUDA build) and
re-runs itself there. HF_CHECK_VENV=DIR uses another venv (created and filled if needed).
Needs target/release/lmtrain and data/synth (scripts/setup.sh makes both); LMTRAIN=PATH picks
another binary. Not part of CI: the Rust tests use the fixture this script writes.

What it does:
1. Trains a small model (2 layers, width 64, context 64) for 200 steps on data/synth (about 20 s
   on 2 CPU cores; or takes --checkpoint) and exports it with `lmtrain export`.
2. Loads the export with GPT2LMHeadModel.from_pretrained and AutoTokenizer.from_pretrained
   (no missing or unexpected weights allowed).
3. Main check: transformers' logits against `lmtrain logits` (from the checkpoint, and from the
   export read back with --hf, which must agree bit for bit) on the same tokens, to a relative
   1e-4 (max |a - b| / max |b|).
4. Greedy continuations of 50 tokens: identical wherever transformers' top-2 logit margin
   exceeds 1e-4 (after the first step where it does not, they may part).
5. AutoTokenizer's encode and decode against lmtrain's on a few strings.
6. With --write-fixture: writes tests/fixtures/hf_tiny/ (the export of a tiny model plus
   transformers' logits and encodings) and tests/fixtures/hf_gpt2_style/ (a gelu_new GPT-2 made
   by transformers, saved the way GPT-2 124M's file is: no `transformer.` prefix, attn.bias
   buffers, an lm_head.weight copy; weights in float16), which the Rust tests compare against.
Exits non-zero if any check fails.
"""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("HF_CHECK_VENV", ROOT / ".venv-hf-check"))
PACKAGES = ["torch", "transformers", "safetensors", "numpy"]
REL_TOL = 1e-4
MARGIN = 1e-4
GREEDY_TOKENS = 50
TEXTS = [
    "Once upon a time, there was a little fox named Max.",
    "  two leading spaces, a\ttab,\nand a newline",
    "Unicode: café, naïve, 日本語, emoji 🦊!",
    "one story<|endoftext|>and the next",
    "trailing space ",
    "Tom said: \"I'm here\" -- and he's 3 years old.",
]


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv_and_reexec() -> None:
    """Creates the venv if needed, installs what is missing, and re-runs this script in it."""
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"check_hf_export: creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    probe = "import torch, transformers, safetensors, numpy"
    if subprocess.run([py, "-c", probe], capture_output=True).returncode != 0:
        print(f"check_hf_export: installing {' '.join(PACKAGES)} into {VENV} (~3 GB)", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "--upgrade", "pip"], check=True, stdout=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", *PACKAGES], check=True, stdout=sys.stderr)
    os.execv(py, [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


if not in_venv():
    ensure_venv_and_reexec()

# From here on we run inside the venv.
import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel  # noqa: E402

LMTRAIN = Path(os.environ.get("LMTRAIN", ROOT / "target" / "release" / "lmtrain"))
FAILURES: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        FAILURES.append(what)


def lmtrain(*args: str) -> str:
    """Runs the lmtrain binary; returns stdout (stderr passes through on failure)."""
    r = subprocess.run([str(LMTRAIN), *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"lmtrain {' '.join(args[:3])} ... failed with {r.returncode}")
    return r.stdout


def lmtrain_logits(source: list[str], tokens: list[int], greedy: int = 0) -> dict:
    out = lmtrain("logits", *source, "--tokens", ",".join(map(str, tokens)), "--greedy", str(greedy))
    return json.loads(out)


def train(work: Path, name: str, sets: list[str]) -> Path:
    """Trains a run on data/synth with the quickstart config and `sets` overrides."""
    data = ROOT / "data" / "synth"
    if not (data / "train-00000-of-00001.parquet").exists():
        raise SystemExit("data/synth is missing: run scripts/setup.sh first")
    args = ["--config", str(ROOT / "configs" / "quickstart.toml")]
    for s in ["device=cpu", f"train.out_dir={work}", f"train.run_name={name}", *sets]:
        args += ["--set", s]
    print(f"training {name}: {' '.join(sets)}", flush=True)
    lmtrain(*args)
    return work / name


def hf_load(export: Path):
    model, info = GPT2LMHeadModel.from_pretrained(str(export), output_loading_info=True)
    model = model.float().eval()
    tok = AutoTokenizer.from_pretrained(str(export))
    return model, tok, info


@torch.no_grad()
def hf_logits(model, batch: list[list[int]]) -> np.ndarray:
    return model(torch.tensor(batch, dtype=torch.long)).logits.float().numpy()


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@torch.no_grad()
def hf_greedy(model, prompt: list[int], n: int, n_tok: int, eot: int) -> tuple[list[int], list[float]]:
    """Greedy decoding as lmtrain's sampler does it: argmax over the tokenizer's ids (padding
    rows excluded), stop at end-of-text. Returns the ids and each step's top-2 margin."""
    ids, out, margins = list(prompt), [], []
    for _ in range(n):
        logits = model(torch.tensor([ids])).logits[0, -1, :n_tok].double()
        top2 = torch.topk(logits, 2)
        nxt = int(torch.argmax(logits))  # lowest id on ties, as lmtrain
        margins.append(float(top2.values[0] - top2.values[1]))
        if nxt == eot:
            break
        ids.append(nxt)
        out.append(nxt)
    return out, margins


def check_tokenizer(tok, hf_source: list[str]) -> dict:
    """AutoTokenizer vs lmtrain on TEXTS; returns {text: ids} for the fixture."""
    print(f"tokenizer: AutoTokenizer gives {type(tok).__name__}")
    encodings = {}
    for text in TEXTS:
        ours = json.loads(lmtrain("logits", *hf_source, f"--text={text}"))
        theirs = tok(text)["input_ids"]
        check(theirs == ours["tokens"] and tok.encode(text) == ours["tokens"],
              f"encode {text!r}: {len(theirs)} ids, identical" if theirs == ours["tokens"]
              else f"encode {text!r}: transformers {theirs} vs lmtrain {ours['tokens']}")
        back = tok.decode(theirs)
        check(back == text and ours["text"] == text,
              f"decode {text!r}: transformers {back!r}, lmtrain {ours['text']!r}")
        encodings[text] = theirs
    return encodings


def main_check(run: Path, work: Path) -> None:
    export = work / "export"
    lmtrain("export", "--checkpoint", str(run), "--out", str(export))
    print(f"exported {run} to {export}")
    model, tok, info = hf_load(export)
    problems = {k: v for k, v in info.items() if v}
    check(not problems, f"GPT2LMHeadModel.from_pretrained: no missing/unexpected/mismatched weights {problems or ''}")
    cfg = json.loads((export / "config.json").read_text())
    n_tok = len(tok)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    print(f"model: {cfg['n_layer']} layers, width {cfg['n_embd']}, context {cfg['n_positions']}, "
          f"vocab {cfg['vocab_size']} (tokenizer {n_tok}, end-of-text {eot}), activation {cfg['activation_function']}")
    check(tok.eos_token_id == eot and tok.bos_token_id == eot and model.config.eos_token_id == eot,
          "bos/eos are <|endoftext|> in the tokenizer and the model config")

    ckpt_src, hf_src = ["--checkpoint", str(run)], ["--hf", str(export)]
    bs, vocab = cfg["n_positions"], cfg["vocab_size"]
    rng = np.random.default_rng(0)
    story = json.loads(lmtrain("logits", *hf_src, "--text=" + TEXTS[0] + " She ran to the river."))["tokens"]
    sequences = {
        "a story prefix": story,
        f"{bs} random ids (padding rows included)": rng.integers(0, vocab, size=bs).tolist(),
        "a single end-of-text": [eot],
    }
    print(f"logits (relative error max|lmtrain - transformers| / max|transformers|, tolerance {REL_TOL:.0e}):")
    for what, seq in sequences.items():
        theirs = hf_logits(model, [seq])[0]
        ours_ckpt = np.array(lmtrain_logits(ckpt_src, seq)["logits"], dtype=np.float32)
        ours_hf = np.array(lmtrain_logits(hf_src, seq)["logits"], dtype=np.float32)
        err = rel_err(ours_ckpt, theirs)
        check(err <= REL_TOL, f"{what} [{len(seq)} tokens x {vocab}]: max rel err {err:.3e}")
        check(np.array_equal(ours_ckpt.view(np.uint32), ours_hf.view(np.uint32)),
              f"{what}: lmtrain's logits from the checkpoint and from the export are bit-identical")

    print(f"greedy continuation of {GREEDY_TOKENS} tokens after {TEXTS[0]!r}:")
    prompt = json.loads(lmtrain("logits", *hf_src, f"--text={TEXTS[0]}"))["tokens"]
    theirs, margins = hf_greedy(model, prompt, GREEDY_TOKENS, n_tok, eot)
    for src_name, src in [("checkpoint", ckpt_src), ("export", hf_src)]:
        ours = lmtrain_logits(src, prompt, GREEDY_TOKENS)["greedy"]
        # Compare the tokens before the first step whose margin is within the tolerance: from
        # that step on, a 1e-4 difference in logits may legitimately pick another token.
        decisive = next((i for i, m in enumerate(margins) if m <= MARGIN), len(margins))
        same = ours[:decisive] == theirs[:decisive] if decisive < len(margins) else ours == theirs
        check(same, f"lmtrain ({src_name}) and transformers agree on {len(theirs)} greedy tokens"
              f" (smallest top-2 margin {min(margins):.3e}; first margin <= {MARGIN:.0e}: "
              f"{'none' if decisive == len(margins) else f'step {decisive}'})")
    print(f"  transformers' continuation: {tok.decode(theirs)!r}")
    check_tokenizer(tok, hf_src)


def write_hf_tiny(work: Path) -> Path:
    """The export of a tiny model, transformers' logits on a fixed batch, and its encodings."""
    run = train(work, "tiny", [
        "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=64",
        "model.vocab_size=320", "tokenizer.vocab_size=300", "data.tokenizer_docs=2000",
        "train.max_steps=50", "train.batch_size=8", "optim.lr=3e-3", "schedule.warmup_steps=5",
        "ema.burn_in=10", "eval.val_every=25", "eval.val_windows=8", "checkpoint.every=50",
    ])
    out = ROOT / "tests" / "fixtures" / "hf_tiny"
    if out.exists():
        shutil.rmtree(out)
    lmtrain("export", "--checkpoint", str(run), "--out", str(out))
    model, tok, info = hf_load(out)
    check(not any(info.values()), "hf_tiny loads with no missing/unexpected weights")
    encodings = check_tokenizer(tok, ["--hf", str(out)])
    return out, model, tok, encodings


def fixed_batch(tok, vocab: int, t: int) -> list[list[int]]:
    """Row 0: real text; row 1: deterministic ids over the whole vocabulary (padding included)."""
    text_ids = tok(" ".join(TEXTS))["input_ids"][:t]
    text_ids += [tok.convert_tokens_to_ids("<|endoftext|>")] * (t - len(text_ids))
    rng = np.random.default_rng(1234)
    return [text_ids, rng.integers(0, vocab, size=t).tolist()]


def save_expected(out: Path, model, batch: list[list[int]], generator: str) -> np.ndarray:
    logits = hf_logits(model, batch)
    save_file(
        {"input_ids": torch.tensor(batch, dtype=torch.int64), "logits": torch.from_numpy(logits).contiguous()},
        str(out / "expected_logits.safetensors"),
        metadata={"generator": generator},
    )
    return logits


def write_gpt2_style(tiny: Path, generator: str) -> None:
    """A gelu_new GPT-2 initialised by transformers, with weights chosen so that exact and tanh GELU
    give clearly different logits, saved like GPT-2 124M's file (no prefix, buffers, an lm_head
    copy), in float16."""
    out = ROOT / "tests" / "fixtures" / "hf_gpt2_style"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tiny_cfg = json.loads((tiny / "config.json").read_text())
    eot = tiny_cfg["eos_token_id"]
    cfg = GPT2Config(vocab_size=320, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                     activation_function="gelu_new", initializer_range=0.25,
                     bos_token_id=eot, eos_token_id=eot, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name:  # non-trivial layer norms, so that their parameters matter too
                p.add_(0.1 * torch.randn_like(p))
            # MLP pre-activations around -2.5, where the two GELUs differ by ~10% of their value,
            # and an MLP output large enough to move the logits: exact GELU then misses
            # transformers' logits by ~5e-3 (relative), 50x the tolerance.
            if name.endswith("mlp.c_fc.bias"):
                p.fill_(-2.5)
            if name.endswith("mlp.c_proj.weight"):
                p.mul_(10.0)
    cfg.save_pretrained(str(out))
    tensors = {}
    for name, p in model.state_dict().items():
        # ".attn.bias" is the mask buffer; "c_attn.bias" is a parameter.
        if name == "lm_head.weight" or name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        tensors[name.removeprefix("transformer.")] = p.detach().half().contiguous()
    tensors["lm_head.weight"] = tensors["wte.weight"].clone()
    for i in range(cfg.n_layer):
        tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(tiny / "tokenizer.json", out / "tokenizer.json")
    reloaded, info = GPT2LMHeadModel.from_pretrained(str(out), output_loading_info=True)
    reloaded = reloaded.float().eval()
    check(not info["missing_keys"], f"hf_gpt2_style loads in transformers (ignored: {sorted(info['unexpected_keys'])})")
    tok = AutoTokenizer.from_pretrained(str(tiny))
    batch = fixed_batch(tok, 320, 32)
    logits = save_expected(out, reloaded, batch, generator)
    reloaded.config.activation_function = "gelu"
    for block in reloaded.transformer.h:
        block.mlp.act = transformers.activations.ACT2FN["gelu"]
    differ = rel_err(hf_logits(reloaded, batch), logits)
    check(differ > 1e-3, f"hf_gpt2_style discriminates the activation: exact GELU moves its logits by {differ:.3e} (relative)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a checkpoint or run directory to check instead of training one")
    ap.add_argument("--write-fixture", action="store_true", help="(re)write tests/fixtures/hf_tiny and hf_gpt2_style")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if not LMTRAIN.exists():
        raise SystemExit(f"{LMTRAIN} is missing: run scripts/setup.sh (or set LMTRAIN)")
    generator = f"scripts/check_hf_export.py, transformers {transformers.__version__}, torch {torch.__version__}"
    print(generator)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="hf-check-", dir=ROOT / "runs" if (ROOT / "runs").is_dir() else None))
    try:
        run = Path(a.checkpoint) if a.checkpoint else train(work, "small", [
            "model.n_layer=2", "model.n_head=4", "model.n_embd=64", "model.block_size=64",
            "model.vocab_size=2048", "tokenizer.vocab_size=2000", "data.tokenizer_docs=5000",
            "train.max_steps=200", "train.batch_size=16", "optim.lr=3e-3", "schedule.warmup_steps=20",
            "schedule.decay_steps=200", "ema.burn_in=50", "eval.val_every=100", "eval.val_windows=16",
            "checkpoint.every=200",
        ])
        main_check(run, work)
        if a.write_fixture:
            print("fixture:")
            tiny, model, tok, encodings = write_hf_tiny(work)
            cfg = json.loads((tiny / "config.json").read_text())
            batch = fixed_batch(tok, cfg["vocab_size"], cfg["n_positions"])
            save_expected(tiny, model, batch, generator)
            (tiny / "expected_tokens.json").write_text(json.dumps(encodings, ensure_ascii=False, indent=1) + "\n")
            write_gpt2_style(tiny, generator)
            size = sum(f.stat().st_size for d in ["hf_tiny", "hf_gpt2_style"] for f in (ROOT / "tests/fixtures" / d).iterdir())
            print(f"  wrote tests/fixtures/hf_tiny and tests/fixtures/hf_gpt2_style ({size / 1024:.0f} KiB)")
    finally:
        if a.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print(f"FAILED: {len(FAILURES)} check(s)")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
