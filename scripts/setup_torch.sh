#!/usr/bin/env bash
# Creates .venv-torch/ with the packages scripts/make_fixture.py needs.
# Idempotent: a venv that already imports torch, numpy and safetensors is left alone,
# since the torch wheel is large (PyPI ships the CUDA build for x86_64, ~3 GB).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-torch"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$PY" ]; then
    "$PYTHON" -m venv "$VENV"
fi

if "$PY" -c 'import torch, numpy, safetensors' >/dev/null 2>&1; then
    echo "setup_torch: .venv-torch already has torch, numpy and safetensors" >&2
else
    "$PY" -m pip install --upgrade pip >&2
    "$PY" -m pip install torch numpy safetensors >&2
    "$PY" -c 'import torch, numpy, safetensors' >&2
fi

"$PY" -c 'import torch; print("setup_torch: torch", torch.__version__)' >&2
echo "$PY"
