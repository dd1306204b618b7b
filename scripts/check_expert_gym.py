#!/usr/bin/env python3
"""Cross-checks lmtrain's shipped SAC experts in Gymnasium's own MuJoCo environments, with numpy.

    python3 scripts/check_expert_gym.py [--experts data/experts] [--episodes 3] [--seed S]
                                        [--lmtrain target/release/lmtrain]
    python3 scripts/check_expert_gym.py --self-test

Uses the virtual environment .venv-env-fixtures/ that scripts/make_env_fixtures.py makes
(gymnasium[mujoco]==1.4.0, mujoco==3.17.0, numpy), creating it when missing and adding
safetensors==0.8.0 to it, and re-runs itself inside it.

For every <env>.safetensors in the experts folder it runs

    lmtrain expert eval --expert PATH --episodes N [--seed S] --trace FILE

(without --seed, lmtrain starts from the card's eval_seed, so the returns are the card's)

which writes {"env": ..., "episodes": [{"seed", "qpos", "qvel", "return", "length",
"actions": [first 20 actions], "observations": [the observations they were taken in]}, ...]}.
For each episode it then makes gymnasium.make(env),
calls reset(seed=seed), puts the simulator in lmtrain's recorded initial state with
env.unwrapped.set_state(qpos, qvel), and rolls out the expert's deterministic policy, computed
here in numpy float32 from the safetensors file alone:

    h = relu(x @ W1 + b1) ...;  a = tanh(h @ W_mean + b_mean) * action_scale + action_bias

(x = observation cast to float32; weights are stored [in, out]), until terminated or truncated.
It prints both returns, their relative difference and the largest |action difference| over the
first 20 steps, then one line per env:

    CHECK env=... episodes=N max_action_diff=... max_return_rel_diff=... rounding_spread=...
          return_bound=... ok|FAIL

Bounds: every action component within 1e-5 of lmtrain's over the first 20 steps, computed on
lmtrain's own observations from the trace (open loop: the same float32 network on the same states
differs only by matmul rounding, ~1e-6; in closed loop the two trajectories drift apart within
those 20 steps in HalfCheetah, so the closed-loop difference is printed but not bounded); each
return within 5% of
lmtrain's (relative to max(|lmtrain return|, 1)). The return bound is loose on purpose: an episode
is up to 1000 closed-loop steps, and the last-bit differences between numpy's and Rust's f32
matmuls feed back through the contact dynamics and grow, so trajectories drift apart late in the
episode even though both sides compute the same policy in the same simulator. How far rounding
alone moves a return is measured too: each episode is also rolled out in Gymnasium with the policy
computed in float64 (rounding_spread: the largest relative return change that makes). In Ant a
last-bit change decides whether an episode stumbles (returns 3508 against 4743 from the same
start), so the bound is max(5%, 2 x rounding_spread). Exits 1 on FAIL.

--self-test needs no lmtrain: it writes a random expert for Hopper-v4 (hidden [8, 8]) with the
safetensors package, loads it with this script's own reader (and checks it against safetensors'
numpy loader), rolls it out in Gymnasium from a set_state start, and runs the comparison on a
trace made from that rollout (must pass) and on one with its return moved by 10% (must fail).
"""

import argparse
import atexit
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-env-fixtures"
PINS = ["gymnasium[mujoco]==1.4.0", "mujoco==3.17.0"]  # as scripts/make_env_fixtures.py
SAFETENSORS_PIN = "safetensors==0.8.0"

ACTION_TOL = 1e-5
RETURN_REL_TOL = 0.05
ACTION_STEPS = 20


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv_and_reexec() -> None:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"check_expert_gym: creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    if subprocess.run([str(python), "-c", "import safetensors.numpy"], capture_output=True).returncode != 0:
        print(f"check_expert_gym: adding {SAFETENSORS_PIN} to {VENV}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", SAFETENSORS_PIN], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


# ---------------------------------------------------------------------------------------------
# The expert file and its numpy policy


def read_safetensors(path: Path):
    """(tensors, metadata) by parsing the file directly: u64 header length, JSON header, raw data."""
    import numpy as np

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end - start != 4 * math.prod(shape):
            raise ValueError(f"{path}: tensor {name} has {end - start} bytes for shape {shape}")
        tensors[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(shape).astype(np.float32)
    return tensors, metadata


class Policy:
    """The expert's deterministic action in numpy float32."""

    def __init__(self, path: Path):
        import numpy as np

        tensors, meta = read_safetensors(path)
        self.check_against_safetensors(path, tensors, meta)
        if meta.get("format") != "lmtrain-expert" or meta.get("version") != "1":
            raise ValueError(f"{path}: metadata format/version {meta.get('format')}/{meta.get('version')}, "
                             "expected lmtrain-expert/1")
        if meta.get("activation") != "relu":
            raise ValueError(f"{path}: activation {meta.get('activation')!r}, only relu is known")
        self.env_id = meta["env"]
        self.obs_dim = int(meta["obs_dim"])
        self.act_dim = int(meta["action_dim"])
        hidden = [int(h) for h in json.loads(meta["hidden"])]
        self.scale = np.asarray(json.loads(meta["action_scale"]), dtype=np.float32)
        self.bias = np.asarray(json.loads(meta["action_bias"]), dtype=np.float32)
        if self.scale.shape != (self.act_dim,) or self.bias.shape != (self.act_dim,):
            raise ValueError(f"{path}: action_scale/action_bias must have {self.act_dim} entries")
        float(meta["log_std_min"]), float(meta["log_std_max"])  # present and numeric

        def take(name, shape):
            if name not in tensors:
                raise ValueError(f"{path}: tensor {name} is missing")
            if tensors[name].shape != tuple(shape):
                raise ValueError(f"{path}: {name} has shape {list(tensors[name].shape)}, expected {list(shape)}")
            return tensors.pop(name)

        self.layers = []
        width = self.obs_dim
        for k, h in enumerate(hidden, start=1):
            self.layers.append((take(f"fc{k}.weight", (width, h)), take(f"fc{k}.bias", (h,))))
            width = h
        self.mean = (take("fc_mean.weight", (width, self.act_dim)), take("fc_mean.bias", (self.act_dim,)))
        take("fc_logstd.weight", (width, self.act_dim))
        take("fc_logstd.bias", (self.act_dim,))
        if tensors:
            raise ValueError(f"{path}: unexpected tensors {sorted(tensors)}")
        self.hidden = hidden

    @staticmethod
    def check_against_safetensors(path, tensors, meta):
        """The hand-written reader must agree with the safetensors package."""
        import numpy as np
        from safetensors import safe_open
        from safetensors.numpy import load_file

        ref = load_file(str(path))
        assert sorted(ref) == sorted(tensors), (sorted(ref), sorted(tensors))
        for name, arr in ref.items():
            assert arr.dtype == np.float32 and np.array_equal(arr, tensors[name]), name
        with safe_open(str(path), "np") as f:
            assert (f.metadata() or {}) == meta

    def __call__(self, obs):
        import numpy as np

        h = np.asarray(obs).astype(np.float32)
        for w, b in self.layers:
            h = np.maximum(h @ w + b, np.float32(0))
        w, b = self.mean
        a = np.tanh(h @ w + b) * self.scale + self.bias
        assert a.dtype == np.float32
        return a


class Float64Policy:
    """The same policy computed in float64 (the action rounded to float32 at the end): a
    perturbation of the last bits only, the size of the one between numpy's and Rust's float32
    matmuls, to show how far rounding alone moves a return in the environment."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.env_id = policy.env_id

    def __call__(self, obs):
        import numpy as np

        p = self.policy
        h = np.asarray(obs, dtype=np.float64)
        for w, b in p.layers:
            h = np.maximum(h @ w.astype(np.float64) + b, 0.0)
        w, b = p.mean
        a = np.tanh(h @ w.astype(np.float64) + b) * p.scale + p.bias
        return a.astype(np.float32)


def return_bound(rounding_spread: float) -> float:
    """The bound on an env's largest relative return difference: RETURN_REL_TOL, or twice the
    largest difference that rounding alone made (float32 against float64 in Gymnasium) when that
    is larger, since in a chaotic environment a last-bit change decides whether an episode
    stumbles."""
    return max(RETURN_REL_TOL, 2.0 * rounding_spread)


# ---------------------------------------------------------------------------------------------
# Rollouts and the comparison


def rollout(policy: Policy, seed: int, qpos, qvel):
    """One Gymnasium episode from lmtrain's initial state: (return, length, first actions)."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(policy.env_id)
    env.reset(seed=seed)
    base = env.unwrapped
    base.set_state(np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64))
    obs = base._get_obs()
    total, length, actions = 0.0, 0, []
    while True:
        action = policy(obs)
        if len(actions) < ACTION_STEPS:
            actions.append(action.copy())
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        length += 1
        if terminated or truncated:
            break
    env.close()
    return total, length, actions


def compare(policy: Policy, trace: dict, label: str) -> bool:
    import numpy as np

    if trace.get("env") != policy.env_id:
        raise ValueError(f"{label}: trace env {trace.get('env')!r} but expert env {policy.env_id!r}")
    episodes = trace["episodes"]
    max_action, max_rel, spread = 0.0, 0.0, 0.0
    ok = len(episodes) > 0
    for i, ep in enumerate(episodes):
        if "qpos" not in ep or "qvel" not in ep:
            raise ValueError(f"{label}: episode {i} of the trace has no qpos/qvel start state")
        ret, length, actions = rollout(policy, int(ep["seed"]), ep["qpos"], ep["qvel"])
        theirs = [np.asarray(a, dtype=np.float64) for a in ep["actions"]]
        n = min(len(actions), len(theirs))
        if n < min(ACTION_STEPS, length, int(ep["length"])):
            print(f"  episode {i}: lmtrain recorded only {len(theirs)} actions", file=sys.stderr)
            ok = False
        # Open loop: this script's actor on lmtrain's observations (traces from before the
        # observations were recorded fall back to the closed-loop comparison).
        observed = ep.get("observations")
        if observed:
            mine = [policy(np.asarray(o, dtype=np.float64)) for o in observed[:n]]
            diff = max((float(np.max(np.abs(mine[t] - theirs[t]))) for t in range(n)), default=0.0)
        else:
            diff = max((float(np.max(np.abs(actions[t] - theirs[t]))) for t in range(n)), default=0.0)
        closed = max((float(np.max(np.abs(actions[t] - theirs[t]))) for t in range(n)), default=0.0)
        rel = abs(ret - float(ep["return"])) / max(abs(float(ep["return"])), 1.0)
        ret64, _, _ = rollout(Float64Policy(policy), int(ep["seed"]), ep["qpos"], ep["qvel"])
        rounding = abs(ret - ret64) / max(abs(ret), 1.0)
        max_action, max_rel, spread = max(max_action, diff), max(max_rel, rel), max(spread, rounding)
        print(
            f"  episode {i} seed={ep['seed']} return lmtrain={float(ep['return']):.3f} gym={ret:.3f} "
            f"rel_diff={rel:.2e} (gym float64 policy {ret64:.3f}, rel {rounding:.2e}) "
            f"length lmtrain={ep['length']} gym={length} "
            f"max_action_diff_first{ACTION_STEPS}={diff:.2e} (closed loop {closed:.2e})"
        )
    bound = return_bound(spread)
    ok = ok and max_action <= ACTION_TOL and max_rel <= bound
    print(
        f"CHECK env={policy.env_id} episodes={len(episodes)} max_action_diff={max_action:.3e} "
        f"max_return_rel_diff={max_rel:.3e} rounding_spread={spread:.3e} return_bound={bound:.3e} "
        f"{'ok' if ok else 'FAIL'}"
    )
    return ok


def check_experts(args) -> int:
    experts = sorted(Path(args.experts).resolve().glob("*.safetensors"))
    if not experts:
        print(f"check_expert_gym: no *.safetensors in {args.experts}", file=sys.stderr)
        return 1
    lmtrain = Path(args.lmtrain).resolve()
    if not lmtrain.is_file():
        print(f"check_expert_gym: {lmtrain} is missing; build it (scripts/setup.sh)", file=sys.stderr)
        return 1
    scratch = Path(os.getcwd())
    failed = []
    for path in experts:
        policy = Policy(path)
        card = path.with_suffix(".json")
        extra = ""
        if card.exists():
            c = json.loads(card.read_text())
            extra = f", card return_mean={c.get('return_mean')} over {len(c.get('returns') or [])} episodes"
        print(f"{path.name}: {policy.env_id}, hidden {policy.hidden}{extra}")
        trace_path = scratch / f"{path.stem}.trace.json"
        cmd = [str(lmtrain), "expert", "eval", "--expert", str(path), "--episodes", str(args.episodes),
               "--trace", str(trace_path)]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        if subprocess.run(cmd, cwd=REPO).returncode != 0 or not trace_path.exists():
            print(f"check_expert_gym: '{' '.join(cmd)}' failed or wrote no trace", file=sys.stderr)
            failed.append(policy.env_id)
            continue
        if not compare(policy, json.loads(trace_path.read_text()), path.name):
            failed.append(policy.env_id)
    if failed:
        print(f"check_expert_gym: FAIL for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def self_test() -> int:
    import gymnasium as gym
    import numpy as np
    from safetensors.numpy import save_file

    env_id, hidden = "Hopper-v4", [8, 8]
    env = gym.make(env_id)
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    env.close()
    rng = np.random.default_rng(0)
    tensors, width = {}, obs_dim
    for k, h in enumerate(hidden, start=1):
        tensors[f"fc{k}.weight"] = (rng.standard_normal((width, h)) / math.sqrt(width)).astype(np.float32)
        tensors[f"fc{k}.bias"] = (0.1 * rng.standard_normal(h)).astype(np.float32)
        width = h
    for head in ("fc_mean", "fc_logstd"):
        tensors[f"{head}.weight"] = (rng.standard_normal((width, act_dim)) / math.sqrt(width)).astype(np.float32)
        tensors[f"{head}.bias"] = (0.1 * rng.standard_normal(act_dim)).astype(np.float32)
    meta = {
        "format": "lmtrain-expert",
        "version": "1",
        "env": env_id,
        "obs_dim": str(obs_dim),
        "action_dim": str(act_dim),
        "hidden": json.dumps(hidden),
        "activation": "relu",
        "action_scale": json.dumps([float(x) for x in (high - low) / 2.0]),
        "action_bias": json.dumps([float(x) for x in (high + low) / 2.0]),
        "log_std_min": "-5",
        "log_std_max": "2",
    }
    path = Path(os.getcwd()) / f"{env_id}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    policy = Policy(path)
    print(f"self-test: wrote and loaded {path.name} ({env_id}, obs {obs_dim}, act {act_dim}, hidden {hidden})")

    x = rng.standard_normal(obs_dim)
    h = x.astype(np.float32)
    for k in range(1, len(hidden) + 1):
        h = np.maximum(h @ tensors[f"fc{k}.weight"] + tensors[f"fc{k}.bias"], 0)
    expect = np.tanh(h @ tensors["fc_mean.weight"] + tensors["fc_mean.bias"]) * (high - low) / 2 + (high + low) / 2
    a = policy(x)
    assert a.shape == (act_dim,) and a.dtype == np.float32 and np.allclose(a, expect, atol=1e-6), (a, expect)
    assert np.all(a >= low) and np.all(a <= high)

    # A stand-in for lmtrain's trace: Gymnasium's own rollouts from reset(seed), recorded here.
    episodes = []
    for seed in (0, 1):
        env = gym.make(env_id)
        env.reset(seed=seed)
        qpos, qvel = env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy()
        env.close()
        ret, length, actions = rollout(policy, seed, qpos, qvel)
        episodes.append({"seed": seed, "qpos": qpos.tolist(), "qvel": qvel.tolist(), "return": ret,
                         "length": length, "actions": [a.tolist() for a in actions]})
        print(f"self-test: seed {seed}: return {ret:.3f} over {length} steps")
    trace = {"env": env_id, "episodes": episodes}
    assert compare(policy, trace, "self-test"), "an identical trace must pass"
    moved = json.loads(json.dumps(trace))
    moved["episodes"][0]["return"] += 0.1 * max(abs(moved["episodes"][0]["return"]), 1.0)
    assert not compare(policy, moved, "self-test (return moved)"), "a return 10% off must fail"
    assert return_bound(0.0) == RETURN_REL_TOL and return_bound(0.3) == 0.6
    moved = json.loads(json.dumps(trace))
    moved["episodes"][1]["actions"][3][0] += 2e-5
    assert not compare(policy, moved, "self-test (action moved)"), "an action 2e-5 off must fail"
    print("SELF-TEST ok (the two CHECK ... FAIL lines above are the expected negative cases)")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", default=str(REPO / "data" / "experts"))
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None,
                    help="first episode's reset seed (default: lmtrain's, the card's eval_seed)")
    ap.add_argument("--lmtrain", default=str(REPO / "target" / "release" / "lmtrain"))
    ap.add_argument("--self-test", action="store_true", help="check this script without lmtrain")
    args = ap.parse_args()
    if not in_venv():
        ensure_venv_and_reexec()
    args.experts = str(Path(args.experts).resolve())
    args.lmtrain = str(Path(args.lmtrain).resolve())
    # MuJoCo may append warnings to MUJOCO_LOG.TXT in the working directory; traces are scratch too.
    scratch = tempfile.mkdtemp(prefix="check_expert_gym-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.chdir(scratch)
    import warnings

    import gymnasium
    import mujoco
    import numpy

    warnings.filterwarnings("ignore", message=".*is out of date.*")
    print(f"check_expert_gym: gymnasium {gymnasium.__version__}, mujoco {mujoco.__version__}, "
          f"numpy {numpy.__version__}", file=sys.stderr)
    sys.exit(self_test() if args.self_test else check_experts(args))


if __name__ == "__main__":
    main()
