#!/usr/bin/env bash
# Downloads the real datasets that configs/tinystories.toml and configs/wikipedia.toml train on,
# for machines with access to the Hugging Face Hub (lmtrain itself never downloads anything).
#   scripts/fetch_data.sh tinystories        # roneneldan/TinyStories: 4 train shards + validation (~1 GB)
#   scripts/fetch_data.sh wikipedia [N]      # wikimedia/wikipedia 20231101.en: the first N of 41 shards (default 2)
# Files land in data/TinyStories/data/ and data/wikipedia/20231101.en/ with their Hub names.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-}"
if [ -z "$what" ]; then
  sed -n '2,6p' "$0" >&2
  exit 2
fi

venv=.venv-hf
if ! "$venv/bin/python" -c "import huggingface_hub" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "huggingface_hub>=0.24"
fi

case "$what" in
  tinystories)
    "$venv/bin/python" - <<'PY'
from huggingface_hub import snapshot_download
snapshot_download("roneneldan/TinyStories", repo_type="dataset",
                  allow_patterns=["data/*.parquet"], local_dir="data/TinyStories")
PY
    ls -l data/TinyStories/data
    ;;
  wikipedia)
    n="${2:-2}"
    N="$n" "$venv/bin/python" - <<'PY'
import os
from huggingface_hub import snapshot_download
n = int(os.environ["N"])
patterns = [f"20231101.en/train-{i:05d}-of-00041.parquet" for i in range(n)]
snapshot_download("wikimedia/wikipedia", repo_type="dataset",
                  allow_patterns=patterns, local_dir="data/wikipedia")
PY
    ls -l data/wikipedia/20231101.en
    ;;
  *)
    echo "fetch_data: unknown dataset '$what' (tinystories | wikipedia)" >&2
    exit 2
    ;;
esac
