"""Multi-host training on one CPU: 2 processes x 2 devices against 1 process x 4 devices.

The `:runlocal` quickstart runs (shrunk further by OVERRIDES) as

* A: one process with 4 CPU devices, 3 RL steps straight;
* B: `launch/multiprocess_cpu.sh 2` (2 processes x 2 devices, gloo collectives,
  `jax.distributed` over 127.0.0.1), 2 RL steps; then the same command with
  `total_steps=3`, which resumes from B's step-2 checkpoint for one more step.

Both runs see the same global mesh shape (data=4) and the same global batches, so
every logged metric of steps 0..3 must agree. `optim.min_lr_ratio=1` makes the learning
rate schedule independent of `total_steps` (warm-up, then constant), so 2 + resume + 1
steps is the same schedule as 3 straight.

Tolerance: discrete metrics (accuracy, rewards, lengths, status fractions, greedy eval)
must match exactly, continuous ones (entropy, KL, losses, gradient norms, ratios) within
rtol 1e-4 / atol 1e-6. Why not bit-exact: the cross-process gradient all-reduce runs
over gloo in B and inside XLA's in-process CPU collectives in A, which may add the four
shards' partial sums in a different order, i.e. differences of a few float32 ulps
(~1e-7 relative) per update, far below 1e-4 after three updates. Sampling is identical
because `jax_threefry_partitionable` makes random bits independent of the sharding.
"""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jaxrl_verify.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/quickstart.py:runlocal"
OVERRIDES = [
  "--config.sft.steps=2",
  # Eval batches shaped like the training rollout (8 prompts x 4 samples: 32 rows, each
  # prompt repeated 4 times), so pass@4's sampling reuses the training sampler's program
  # instead of compiling another.
  "--config.eval.k=4",
  "--config.eval.batch_size=32",
  "--config.eval.num_examples=16",
  "--config.verifier.workers=1",
  "--config.optim.min_lr_ratio=1.0",
  "--config.optim.warmup_steps=0",
  # The barely warm-started policy solves nothing (reward 0 everywhere, so GRPO has no
  # signal); DAPO's length penalty makes rewards differ within groups, so every update
  # has a real gradient to all-reduce across processes.
  "--config.algo.overlong_buffer=12",
  "--config.checkpoint_every=2",
]
# Pool counters (completed, statuses, cache hits, failures) are summed over the hosts' pools,
# so they must equal the single pool's exactly.
EXACT = ("accuracy", "reward/mean", "response_length/", "verify/frac_", "eval/")
EXACT += ("verify/completed", "verify/status_", "verify/cache_hits", "verify/timeouts")
EXACT += ("verify/errors", "verify/crashes", "verify/respawns")
# Timings, and what depends on how many workers there are (two pools against one).
SKIP = ("time/", "tokens_per_s", "verify/latency", "verify/throughput", "verify/recycles")
# pass@k/maj@k sample each process's padded chunk of prompts: the rows sit at other global
# positions than in the single-process run, so they draw other random numbers by design.
SKIP += ("eval/pass@", "eval/maj@")


def _env(devices: int, cache_dir: Path) -> dict[str, str]:
  """A clean environment: not the conftest's 8-device XLA_FLAGS (nor other JAX settings)."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
  env.update(
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    PYTHONPATH=str(REPO),
    PYTHON=sys.executable,
    # The suite's persistent compilation cache (conftest), else one for this test's runs.
    JAX_COMPILATION_CACHE_DIR=os.environ.get("JAX_COMPILATION_CACHE_DIR", str(cache_dir)),
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
  )
  return env


def _free_port() -> str:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return str(s.getsockname()[1])


def _start(cmd: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, Path]:
  with open(log, "w") as f:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT), log


def _single(workdir: Path, steps: int):
  cmd = [sys.executable, "-m", "jaxrl_verify.train", f"--config={CONFIG}"]
  cmd += [f"--workdir={workdir}", f"--config.total_steps={steps}", *OVERRIDES]
  return _start(cmd, _env(4, workdir.parent / "jit_cache"), workdir.parent / f"{workdir.name}.log")


def _two_process(workdir: Path, steps: int):
  cmd = ["bash", "launch/multiprocess_cpu.sh", "2", CONFIG, f"--workdir={workdir}"]
  cmd += [f"--config.total_steps={steps}", *OVERRIDES]
  env = _env(2, workdir.parent / "jit_cache") | {"DEVICES_PER_PROCESS": "2", "PORT": _free_port()}
  return _start(cmd, env, workdir.parent / f"{workdir.name}_{steps}.log")


def _finish(run: tuple[subprocess.Popen, Path], what: str) -> None:
  proc, log = run
  rc = proc.wait(timeout=900)
  assert rc == 0, f"{what} failed with {rc}:\n{log.read_text()[-4000:]}"


def _meta(workdir: Path, step: int) -> dict:
  return json.loads((workdir / "checkpoints" / str(step) / "meta" / "metadata").read_text())


def _compare(ref: dict, got: dict, step: int) -> None:
  keys = [k for k in ref if k in got and k != "step" and not k.startswith(SKIP)]
  assert "reward/mean" in keys or "eval/accuracy" in keys, sorted(got)
  for key in keys:
    a, b = float(ref[key]), float(got[key])
    if key.startswith(EXACT):
      assert a == b, f"step {step} {key}: 1 process {a} vs 2 processes {b}"
    else:
      assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), f"step {step} {key}: {a} vs {b}"


def test_two_processes_match_one_and_resume(tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  one.mkdir()
  two.mkdir()
  # A and B run concurrently (3 processes); B' needs B's checkpoint.
  run_a, run_b = _single(one, steps=3), _two_process(two, steps=2)
  _finish(run_b, "2-process run")
  assert sorted(int(p.name) for p in (two / "checkpoints").iterdir() if p.name.isdigit()) == [0, 2]
  _finish(_two_process(two, steps=3), "2-process resume")
  _finish(run_a, "1-process run")

  ref = {r["step"]: r for r in read_metrics(one)}
  got = {r["step"]: r for r in read_metrics(two)}
  assert sorted(ref) == sorted(got) == [0, 1, 2, 3]
  # Not vacuous: the updates moved the policy, so steps 2-3 depend on the all-reduce.
  assert ref[1]["grad_norm/policy"] > 0 and ref[2]["kl"] > 0
  assert ref[3]["entropy"] != ref[1]["entropy"]
  assert "eval/pass@4" in got[0] and "eval/pass@4" in got[3]
  # Both hosts' completions (8 prompts x 4 samples), not process 0's 16.
  assert got[1]["verify/completed"] == ref[1]["verify/completed"] == 8 * 4
  for step in range(4):
    _compare(ref[step], got[step], step)

  # The resumed run continued the data stream and the step count where B stopped.
  assert _meta(two, 2)["data"]["position"] == 2 * 8
  assert _meta(two, 3)["data"] == _meta(one, 3)["data"]
  assert _meta(two, 3)["policy_version"] == _meta(one, 3)["policy_version"] == 3
  # Only process 0 writes metrics and plots; the others log to their own files.
  assert (two / "reward_curve.png").exists()
  assert (two / "logs" / "process_1.log").exists()


def test_initialize_single_process_and_bad_arguments(monkeypatch):
  from jaxrl_verify import distributed

  monkeypatch.setenv("JAX_NUM_PROCESSES", "1")
  assert distributed.initialize() is False  # An explicit single process: nothing started.
  monkeypatch.delenv("JAX_NUM_PROCESSES")
  with pytest.raises(ValueError, match="needs a port"):
    distributed.initialize("10.0.0.2", 2, 0)
  with pytest.raises(ValueError, match=r"--process_id=2 must be in \[0, 2\)"):
    distributed.initialize("10.0.0.2:1234", 2, 2)
  monkeypatch.setenv("JAX_PROCESS_ID", "x")
  with pytest.raises(ValueError, match="JAX_PROCESS_ID='x' must be an integer"):
    distributed.initialize("10.0.0.2:1234", 2)
