#!/usr/bin/env python3
"""Records Gymnasium's own MuJoCo v4 rollouts as the fixtures that lmtrain's environments replay.

    python3 scripts/make_env_fixtures.py [--out tests/fixtures/env]

Creates (once) a virtual environment .venv-env-fixtures/ with gymnasium[mujoco]==1.4.0 and
mujoco==3.17.0 from PyPI, re-runs itself inside it, and writes one JSON file per recording:

    {"env": "Walker2d-v4", "seed": 0, "qpos": [...], "qvel": [...], "reset_obs": [...],
     "steps": [{"action": [...], "obs": [...], "reward": r, "terminated": b, "truncated": b,
                "info": {...}}, ...],
     "versions": {...}}

qpos/qvel are the state right after reset(seed); the actions are uniform draws from the action
space (float32, seeded) until the episode ends or the step cap is reached. Numbers are written
with Python's shortest round-trip repr, so a bit-exact parser reads back the very doubles.
Only `env`, `qpos`, `qvel` and `steps[*].{action, obs, reward, terminated, truncated}` are
required by `lmtrain env replay`; `reset_obs` and `info` are checked when present.
"""

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-env-fixtures"
PINS = ["gymnasium[mujoco]==1.4.0", "mujoco==3.17.0"]

# (env id, seed, step cap, file stem). Random actions end the terminating envs early (a fall);
# one long HalfCheetah run reaches the 1000-step time limit, so `truncated` is exercised too.
# Humanoid's observation is 376 numbers, so its cap keeps the file small.
RECORDINGS = [
    ("Walker2d-v4", 0, 300, "walker2d_seed0"),
    ("Walker2d-v4", 1, 300, "walker2d_seed1"),
    ("Walker2d-v4", 2, 300, "walker2d_seed2"),
    ("Walker2d-v4", 3, 300, "walker2d_seed3"),
    ("Hopper-v4", 0, 300, "hopper_seed0"),
    ("Hopper-v4", 1, 300, "hopper_seed1"),
    ("Hopper-v4", 2, 300, "hopper_seed2"),
    ("Hopper-v4", 3, 300, "hopper_seed3"),
    ("HalfCheetah-v4", 0, 300, "half_cheetah_seed0"),
    ("HalfCheetah-v4", 1, 1000, "half_cheetah_seed1_timelimit"),
    ("Ant-v4", 0, 300, "ant_seed0"),
    ("Ant-v4", 1, 300, "ant_seed1"),
    ("Humanoid-v4", 0, 100, "humanoid_seed0"),
    ("Humanoid-v4", 1, 100, "humanoid_seed1"),
]


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv_and_reexec() -> None:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"make_env_fixtures: creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def floats(a) -> list:
    # float() of a float32 is exact, so the JSON holds the very value Gymnasium used.
    return [float(x) for x in a]


def info_terms(info: dict) -> dict:
    return {k: float(v) for k, v in info.items() if k != "TimeLimit.truncated"}


def record(env_id: str, seed: int, cap: int) -> dict:
    import gymnasium as gym
    import mujoco
    import numpy as np

    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    data = env.unwrapped.data
    out = {
        "env": env_id,
        "seed": seed,
        "qpos": floats(data.qpos),
        "qvel": floats(data.qvel),
        "reset_obs": floats(obs),
        "steps": [],
        "versions": {
            "gymnasium": gym.__version__,
            "mujoco": mujoco.__version__,
            "numpy": np.__version__,
        },
    }
    env.action_space.seed(seed)
    for _ in range(cap):
        action = env.action_space.sample()
        assert action.dtype == np.float32, action.dtype
        obs, reward, terminated, truncated, info = env.step(action)
        out["steps"].append(
            {
                "action": floats(action),
                "obs": floats(obs),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "info": info_terms(info),
            }
        )
        if terminated or truncated:
            break
    env.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "env"))
    ap.add_argument("--venv-only", action="store_true", help="create the venv and stop")
    args = ap.parse_args()
    if not in_venv():
        ensure_venv_and_reexec()
    if args.venv_only:
        return
    out_dir = Path(args.out).resolve()
    # MuJoCo's default log handler appends warnings (the models use a deprecated attribute) to
    # MUJOCO_LOG.TXT in the working directory; keep that out of the repository.
    scratch = tempfile.mkdtemp(prefix="make_env_fixtures-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.chdir(scratch)
    out_dir.mkdir(parents=True, exist_ok=True)
    for env_id, seed, cap, stem in RECORDINGS:
        rec = record(env_id, seed, cap)
        path = out_dir / f"{stem}.json"
        path.write_text(json.dumps(rec, separators=(",", ":")) + "\n")
        last = rec["steps"][-1]
        print(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {env_id} seed {seed}, "
            f"{len(rec['steps'])} steps, terminated={last['terminated']} truncated={last['truncated']}, "
            f"{path.stat().st_size // 1024} KiB",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
