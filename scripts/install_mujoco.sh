#!/usr/bin/env bash
# Installs MuJoCo 3.17.0 (the shared library and its headers) and Gymnasium 1.4.0's MuJoCo model
# files into third_party/mujoco/, idempotently, from PyPI wheels only (this project reaches PyPI,
# not GitHub). No virtual environment is needed: the wheels are zip files and only their data is
# used.
#
#   third_party/mujoco/lib/libmujoco.so.3.17.0   the library (its SONAME), from the mujoco wheel
#   third_party/mujoco/lib/libmujoco.so          link that mujoco-rs's build script looks for
#   third_party/mujoco/include/mujoco/*.h        headers (scripts/env_bench.sh compiles against them)
#   third_party/mujoco/assets/*.xml              the environments' models, from the gymnasium wheel
#   third_party/mujoco/spec/*_v4.py              Gymnasium's v4 environments: the specification that
#                                                src/env/ follows (kept for reading, never run)
#
# .cargo/config.toml points mujoco-rs at lib/ (MUJOCO_DYNAMIC_LINK_DIR) and build.rs records it
# as the binary's run-time search path, so nothing needs LD_LIBRARY_PATH.
#
# The wheels are pinned by hash. The mujoco wheel is the CPython 3.11 build whatever the local
# Python is, because the fixtures in tests/fixtures/env/ were recorded with that very library:
# bit-exact replay needs the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."

MUJOCO_VERSION=3.17.0
GYMNASIUM_VERSION=1.4.0
MUJOCO_WHEEL_SHA256=d66928d86a2d1b601bbaa4dc11db50214d17d5301bb8afd84721313b67ff0874
GYMNASIUM_WHEEL_SHA256=1cb947c59e7c72d8eabb2c2274c00cd20948e69f8452a9ef4092223be24fdf0e
DEST=third_party/mujoco
STAMP="$DEST/installed-mujoco-$MUJOCO_VERSION-gymnasium-$GYMNASIUM_VERSION"

if [ -f "$STAMP" ] && [ -f "$DEST/lib/libmujoco.so.$MUJOCO_VERSION" ]; then
  echo "install_mujoco: $DEST already holds MuJoCo $MUJOCO_VERSION and Gymnasium $GYMNASIUM_VERSION's models" >&2
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install_mujoco: only Linux x86_64 is supported (this is $(uname -s)-$(uname -m)); build lmtrain" \
    "without MuJoCo: cargo build --release --no-default-features --features cuda" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "install_mujoco: python3 is missing (Debian: apt-get install python3 python3-pip)" >&2
  exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "install_mujoco: python3 has no pip (Debian: apt-get install python3-pip)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "install_mujoco: downloading mujoco==$MUJOCO_VERSION and gymnasium==$GYMNASIUM_VERSION wheels from PyPI" >&2
# --require-hashes needs every requirement pinned with its hash; pip then refuses any other file.
cat >"$work/requirements.txt" <<EOF
mujoco==$MUJOCO_VERSION --hash=sha256:$MUJOCO_WHEEL_SHA256
gymnasium==$GYMNASIUM_VERSION --hash=sha256:$GYMNASIUM_WHEEL_SHA256
EOF
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  -r "$work/requirements.txt" -d "$work/wheels"; then
  echo "install_mujoco: cannot download the wheels from PyPI (see pip's message above); without" \
    "MuJoCo, build with: cargo build --release --no-default-features --features cuda" >&2
  exit 1
fi

mujoco_wheel=$(ls "$work"/wheels/mujoco-"$MUJOCO_VERSION"-*.whl)
gymnasium_wheel=$(ls "$work"/wheels/gymnasium-"$GYMNASIUM_VERSION"-*.whl)
# Wheels are zip files; Python's zipfile unpacks the members needed (no unzip tool required).
extract() {  # WHEEL DEST GLOB...
  python3 - "$@" <<'PY'
import fnmatch, sys, zipfile
wheel, dest, globs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if any(fnmatch.fnmatch(n, g) for g in globs)]
    for g in globs:
        if not any(fnmatch.fnmatch(n, g) for n in names):
            sys.exit(f"install_mujoco: {wheel} has no {g}")
    z.extractall(dest, names)
PY
}
extract "$mujoco_wheel" "$work/mujoco" "mujoco/libmujoco.so.$MUJOCO_VERSION" 'mujoco/include/*'
extract "$gymnasium_wheel" "$work/gymnasium" 'gymnasium/envs/mujoco/assets/*' \
  'gymnasium/envs/mujoco/*_v4.py' 'gymnasium/envs/mujoco/mujoco_env.py'

# Build the tree beside the old one, then swap, so an interrupted run never leaves half a tree.
staging="$DEST.partial"
rm -rf "$staging"
mkdir -p "$staging/lib" "$staging/spec"
cp "$work/mujoco/mujoco/libmujoco.so.$MUJOCO_VERSION" "$staging/lib/"
ln -s "libmujoco.so.$MUJOCO_VERSION" "$staging/lib/libmujoco.so"
cp -r "$work/mujoco/mujoco/include" "$staging/include"
cp -r "$work/gymnasium/gymnasium/envs/mujoco/assets" "$staging/assets"
cp "$work"/gymnasium/gymnasium/envs/mujoco/*.py "$staging/spec/"
touch "$staging/$(basename "$STAMP")"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$staging" "$DEST"
echo "install_mujoco: installed into $DEST" >&2
