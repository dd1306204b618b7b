#!/usr/bin/env python3
"""PyTorch SAC reference for scripts/sac_bench.sh: CleanRL's sac_continuous_action.py, timed on the CPU.

    python3 scripts/sac_bench_torch.py [--env Walker2d-v4] [--learning-starts 5000] [--steps 2000]
                                       [--seed 0] [--venv-only]

Creates (once, and again whenever an installed version differs from PINS) a virtual environment
.venv-sac-bench/ from PyPI, re-runs itself inside it, and prints one line

    RESULT impl=torch env=Walker2d-v4 learning_starts=L steps=N seconds=S steps_per_s=X

Why a re-statement and not CleanRL's own file: the newest `cleanrl` on PyPI (0.4.8, an sdist) ships
a 2021 sac_continuous_action.py that is a different algorithm from the one CleanRL documents and
benchmarks today (256x128 networks, policy_frequency 1, a deque replay buffer, gym 0.x and
pybullet imports, and all of its code runs at import time). So this file is our own step-by-step
re-statement of the current GitHub version (vwxyzjn/cleanrl, cleanrl/sac_continuous_action.py,
read at commit 004f8a08), with its defaults: actor obs->256->256->(mean, log_std) and two critics
(obs,act)->256->256->1, ReLU, PyTorch's default Linear init; log_std squashed by tanh into
[-5, 2]; Adam with q_lr 1e-3 for both critics (one optimizer) and for log_alpha, policy_lr 3e-4 for
the actor; batch 256, gamma 0.99, tau 0.005 with a Polyak update every step, policy_frequency 2
(every second step, two actor updates each followed by an alpha update), alpha autotuned from
log_alpha = 0 toward target entropy -act_dim with the loss -(exp(log_alpha) * (log_pi + target)),
critic loss mse(q1) + mse(q2); a replay buffer of 1e6 transitions on numpy laid out and sampled as
Stable-Baselines3's ReplayBuffer (float32 arrays [size, n_envs, dim], np.random.randint indices,
handle_timeout_termination=False, so only `terminated` stops bootstrapping).

Differences from CleanRL's file, none of which changes the work of a step:
- Gymnasium 1.x's SyncVectorEnv resets a finished episode on the *next* step by default and no
  longer reports `final_observation`; we build the one-env SyncVectorEnv with
  autoreset_mode=SAME_STEP, which returns the final observation in infos["final_obs"] as CleanRL's
  code expects (the stored next observation on truncation is the real last one).
- No tensorboard/wandb logging, no episode printing, no `SPS:` print every 100 steps.
- The device is the CPU (CleanRL picks CUDA when present).

Timing follows CleanRL's step numbering: steps 0..L-1 take uniform random actions; step L acts
with the policy but does not update yet (CleanRL updates when global_step > learning_starts);
the clock then covers steps L+1..L+N, each one a policy action, an environment step, a buffer
write, a critic update and the Polyak update, with the actor and alpha updates on even steps.
seconds is wall time over those N steps; steps_per_s = N / seconds. Threads come from
OMP_NUM_THREADS (scripts/sac_bench.sh sets 2), which torch reads at start-up.
"""

import argparse
import atexit
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-sac-bench"
# PyPI's default torch wheel (the CUDA build on x86_64, runs on the CPU) is what is reachable here.
PINS = {
    "torch": "2.15.0",
    "numpy": "2.4.6",
    "gymnasium": "1.4.0",
    "mujoco": "3.17.0",
}
EXTRAS = {"gymnasium": "[mujoco]"}

LOG_STD_MAX = 2
LOG_STD_MIN = -5


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def pinned_ok(python: Path) -> bool:
    check = (
        "import importlib.metadata as m, sys; pins = dict(a.split('=', 1) for a in sys.argv[1:]); "
        "sys.exit(0 if all(m.version(k) == v for k, v in pins.items()) else 1)"
    )
    args = [f"{k}={v}" for k, v in PINS.items()]
    return subprocess.run([str(python), "-c", check, *args], capture_output=True).returncode == 0


def ensure_venv_and_reexec() -> None:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"sac_bench_torch: creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not pinned_ok(python):
        reqs = [f"{k}{EXTRAS.get(k, '')}=={v}" for k, v in PINS.items()]
        print(f"sac_bench_torch: installing {' '.join(reqs)} into {VENV} (torch is large)", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *reqs], check=True)
        if not pinned_ok(python):
            sys.exit(f"sac_bench_torch: {VENV} still does not hold the pinned versions {PINS}")
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def build(env_id: str, seed: int, learning_starts: int, steps: int) -> float:
    """Runs CleanRL's loop for learning_starts + 1 + steps steps; returns the seconds of the last `steps`."""
    import gymnasium as gym
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim

    class SoftQNetwork(nn.Module):
        def __init__(self, obs_dim: int, act_dim: int):
            super().__init__()
            self.fc1 = nn.Linear(obs_dim + act_dim, 256)
            self.fc2 = nn.Linear(256, 256)
            self.fc3 = nn.Linear(256, 1)

        def forward(self, x, a):
            h = torch.cat([x, a], 1)
            h = F.relu(self.fc1(h))
            h = F.relu(self.fc2(h))
            return self.fc3(h)

    class Actor(nn.Module):
        def __init__(self, obs_dim: int, act_dim: int, low, high):
            super().__init__()
            self.fc1 = nn.Linear(obs_dim, 256)
            self.fc2 = nn.Linear(256, 256)
            self.fc_mean = nn.Linear(256, act_dim)
            self.fc_logstd = nn.Linear(256, act_dim)
            self.register_buffer("action_scale", torch.tensor((high - low) / 2.0, dtype=torch.float32))
            self.register_buffer("action_bias", torch.tensor((high + low) / 2.0, dtype=torch.float32))

        def forward(self, x):
            h = F.relu(self.fc1(x))
            h = F.relu(self.fc2(h))
            mean = self.fc_mean(h)
            log_std = torch.tanh(self.fc_logstd(h))
            log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
            return mean, log_std

        def get_action(self, x):
            mean, log_std = self(x)
            normal = torch.distributions.Normal(mean, log_std.exp())
            x_t = normal.rsample()
            y_t = torch.tanh(x_t)
            action = y_t * self.action_scale + self.action_bias
            log_prob = normal.log_prob(x_t)
            log_prob = log_prob - torch.log(self.action_scale * (1 - y_t.pow(2)) + 1e-6)
            log_prob = log_prob.sum(1, keepdim=True)
            return action, log_prob, torch.tanh(mean) * self.action_scale + self.action_bias

    class ReplayBuffer:
        """Stable-Baselines3's ReplayBuffer (no memory optimisation, no timeout handling) on numpy."""

        def __init__(self, size: int, obs_dim: int, act_dim: int, n_envs: int = 1):
            self.size, self.n_envs, self.pos, self.full = size, n_envs, 0, False
            self.observations = np.zeros((size, n_envs, obs_dim), dtype=np.float32)
            self.next_observations = np.zeros((size, n_envs, obs_dim), dtype=np.float32)
            self.actions = np.zeros((size, n_envs, act_dim), dtype=np.float32)
            self.rewards = np.zeros((size, n_envs), dtype=np.float32)
            self.dones = np.zeros((size, n_envs), dtype=np.float32)
            self.timeouts = np.zeros((size, n_envs), dtype=np.float32)

        def add(self, obs, next_obs, action, reward, done):
            self.observations[self.pos] = np.array(obs)
            self.next_observations[self.pos] = np.array(next_obs)
            self.actions[self.pos] = np.array(action)
            self.rewards[self.pos] = np.array(reward)
            self.dones[self.pos] = np.array(done)
            self.pos += 1
            if self.pos == self.size:
                self.full, self.pos = True, 0

        def sample(self, batch_size: int):
            upper = self.size if self.full else self.pos
            idx = np.random.randint(0, upper, size=batch_size)
            env_idx = np.random.randint(0, high=self.n_envs, size=(len(idx),))
            data = (
                self.observations[idx, env_idx, :],
                self.actions[idx, env_idx, :],
                self.next_observations[idx, env_idx, :],
                (self.dones[idx, env_idx] * (1 - self.timeouts[idx, env_idx])).reshape(-1, 1),
                self.rewards[idx, env_idx].reshape(-1, 1),
            )
            return tuple(torch.tensor(a) for a in data)

    gamma, tau, batch_size = 0.99, 0.005, 256
    policy_lr, q_lr, policy_frequency, target_network_frequency = 3e-4, 1e-3, 2, 1

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True

    def make_env():
        env = gym.make(env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env.action_space.seed(seed)
        return env

    envs = gym.vector.SyncVectorEnv([make_env], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    space = envs.single_action_space
    assert isinstance(space, gym.spaces.Box), "only continuous action space is supported"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(space.shape))

    actor = Actor(obs_dim, act_dim, space.low, space.high)
    qf1, qf2 = SoftQNetwork(obs_dim, act_dim), SoftQNetwork(obs_dim, act_dim)
    qf1_target, qf2_target = SoftQNetwork(obs_dim, act_dim), SoftQNetwork(obs_dim, act_dim)
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    q_optimizer = optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=q_lr)
    actor_optimizer = optim.Adam(list(actor.parameters()), lr=policy_lr)
    target_entropy = -float(act_dim)
    log_alpha = torch.zeros(1, requires_grad=True)
    alpha = log_alpha.exp().item()
    a_optimizer = optim.Adam([log_alpha], lr=q_lr)

    rb = ReplayBuffer(int(1e6), obs_dim, act_dim)
    obs, _ = envs.reset(seed=seed)
    total = learning_starts + 1 + steps
    t0 = None
    for global_step in range(total):
        if global_step == learning_starts + 1:
            t0 = time.perf_counter()
        if global_step < learning_starts:
            actions = np.array([space.sample() for _ in range(envs.num_envs)])
        else:
            actions, _, _ = actor.get_action(torch.Tensor(obs))
            actions = actions.detach().cpu().numpy()

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        real_next_obs = next_obs.copy()
        for i, trunc in enumerate(truncations):
            if trunc:
                real_next_obs[i] = infos["final_obs"][i]
        rb.add(obs, real_next_obs, actions, rewards, terminations)
        obs = next_obs

        if global_step > learning_starts:
            b_obs, b_act, b_next, b_done, b_rew = rb.sample(batch_size)
            with torch.no_grad():
                next_actions, next_log_pi, _ = actor.get_action(b_next)
                qf1_next = qf1_target(b_next, next_actions)
                qf2_next = qf2_target(b_next, next_actions)
                min_qf_next = torch.min(qf1_next, qf2_next) - alpha * next_log_pi
                next_q = b_rew.flatten() + (1 - b_done.flatten()) * gamma * min_qf_next.view(-1)

            qf1_a = qf1(b_obs, b_act).view(-1)
            qf2_a = qf2(b_obs, b_act).view(-1)
            qf_loss = F.mse_loss(qf1_a, next_q) + F.mse_loss(qf2_a, next_q)
            q_optimizer.zero_grad()
            qf_loss.backward()
            q_optimizer.step()

            if global_step % policy_frequency == 0:
                for _ in range(policy_frequency):
                    pi, log_pi, _ = actor.get_action(b_obs)
                    min_qf_pi = torch.min(qf1(b_obs, pi), qf2(b_obs, pi))
                    actor_loss = ((alpha * log_pi) - min_qf_pi).mean()
                    actor_optimizer.zero_grad()
                    actor_loss.backward()
                    actor_optimizer.step()

                    with torch.no_grad():
                        _, log_pi, _ = actor.get_action(b_obs)
                    alpha_loss = (-log_alpha.exp() * (log_pi + target_entropy)).mean()
                    a_optimizer.zero_grad()
                    alpha_loss.backward()
                    a_optimizer.step()
                    alpha = log_alpha.exp().item()

            if global_step % target_network_frequency == 0:
                for net, target in ((qf1, qf1_target), (qf2, qf2_target)):
                    for param, target_param in zip(net.parameters(), target.parameters()):
                        target_param.data.copy_(tau * param.data + (1 - tau) * target_param.data)
    seconds = time.perf_counter() - t0
    envs.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Walker2d-v4")
    ap.add_argument("--learning-starts", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--venv-only", action="store_true", help="create or update the venv and stop")
    args = ap.parse_args()
    if not in_venv():
        ensure_venv_and_reexec()
    if args.venv_only:
        return
    if args.steps < 1 or args.learning_starts < 1:
        sys.exit("sac_bench_torch: --steps and --learning-starts must be at least 1")
    import torch

    print(
        f"sac_bench_torch: torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), {args.env}, "
        f"{args.learning_starts} random steps, then {args.steps} timed steps",
        file=sys.stderr,
    )
    # MuJoCo may append warnings to MUJOCO_LOG.TXT in the working directory; keep it out of the repo.
    scratch = tempfile.mkdtemp(prefix="sac_bench_torch-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.chdir(scratch)
    import warnings

    import gymnasium  # noqa: F401  (its import installs warning filters; ours goes in front of them)

    warnings.filterwarnings("ignore", message=".*is out of date.*")
    seconds = build(args.env, args.seed, args.learning_starts, args.steps)
    print(
        f"RESULT impl=torch env={args.env} learning_starts={args.learning_starts} steps={args.steps} "
        f"seconds={seconds:.3f} steps_per_s={args.steps / seconds:.2f}"
    )


if __name__ == "__main__":
    main()
