r"""Simulator verifier throughput, and where a verification's time goes.

  python benchmarks/simulator_verifier.py [--programs 60] [--workers 2] [--repeats 10]

Programs: the reference and the warm-start (wrong-constant) programs of `--programs` / 2
problems drawn round-robin over the six systems (`jaxrl_verify.data.simulators`), each
verified on its problem's 5 held-out rollouts of 20 steps. One JSON object per line:

* `split`: seconds per verification in this process (`verify_s`, median over the programs),
  and its parts measured in the same run: `sandbox_startup_s` (a trivial `calls`-mode
  harness run in bwrap: what every verification pays), `truth_s` (the parent computing
  the held-out truth) and `program_s` = verify - startup - truth (the program's own rollouts,
  serialisation and scoring).
* `throughput`: programs verified per second through `VerifierPool(num_workers=--workers)`
  (cache off), against the target of 20/s on 2 workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_verify.data import simulators  # noqa: E402
from jaxrl_verify.verifiers import sandbox  # noqa: E402
from jaxrl_verify.verifiers import simulator_systems as systems  # noqa: E402
from jaxrl_verify.verifiers.pool import VerifierPool  # noqa: E402
from jaxrl_verify.verifiers.simulator import verify_simulator  # noqa: E402


def _requests(n: int) -> list[dict]:
  rng = np.random.default_rng(0)
  out = []
  for i in range((n + 1) // 2):
    ex = simulators.sample_problem(rng, simulators.SYSTEM_ORDER[i % 6])
    fields = {"system": ex["system"], "spec": ex["spec"]}
    for program in (ex["solution"], ex["warm_start"]):
      out.append(
        {"verifier": "simulator", "completion": program, "reference": None, "fields": fields}
      )
  return out[:n]


def _median(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def split(requests: list[dict], repeats: int) -> dict:
  spec = [sandbox.Spec({"mode": "calls", "program": "x = 1", "calls": ["x"]})]
  startup = _median(lambda: sandbox.run_group(spec, sandbox.Limits(wall_s=10)), repeats)
  verify, truth = [], []
  for r in requests:
    t0 = time.perf_counter()
    verify_simulator(r["completion"], None, **r["fields"])
    verify.append(time.perf_counter() - t0)
    s = json.loads(r["fields"]["spec"])
    source = systems.program(r["fields"]["system"], s["params"])
    t0 = time.perf_counter()
    for h in s["heldout"]:
      systems.rollout(source, h, s["horizon"], s["dt"])
    truth.append(time.perf_counter() - t0)
  v, t = statistics.median(verify), statistics.median(truth)
  return {
    "config": "split",
    "verify_s": round(v, 4),
    "sandbox_startup_s": round(startup, 4),
    "truth_s": round(t, 5),
    "program_s": round(v - startup - t, 4),
    "programs": len(requests),
  }


def throughput(requests: list[dict], workers: int) -> dict:
  with VerifierPool(num_workers=workers, timeout_s=30, cache_size=0) as pool:
    pool.map(requests[: 2 * workers])  # warm the workers
    t0 = time.perf_counter()
    verdicts = pool.map(requests)
    pool_s = time.perf_counter() - t0
  failed = [v for v in verdicts if v.extras is None or v.extras.get("runs") != 1.0]
  if failed:
    raise RuntimeError(f"{len(failed)} programs did not run, e.g. {failed[0]}")
  return {
    "config": "throughput",
    "workers": workers,
    "programs": len(requests),
    "rollouts_per_program": simulators.HELDOUT_ROLLOUTS,
    "pool_per_s": round(len(requests) / pool_s, 2),
    "target_per_s": 20.0,
    "cpus": os.cpu_count(),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--programs", type=int, default=60)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  if args.programs < 2 or args.workers < 1:
    parser.error("--programs must be at least 2 and --workers at least 1.")
  requests = _requests(args.programs)
  print(json.dumps(split(requests, args.repeats)), flush=True)
  print(json.dumps(throughput(requests, args.workers)), flush=True)


if __name__ == "__main__":
  main()
