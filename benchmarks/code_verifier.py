r"""Code verifier throughput and sandbox start-up overhead.

  python benchmarks/code_verifier.py [--programs 40] [--workers 2] [--repeats 10]

One JSON object per measured configuration on stdout:

* `startup`: seconds per sandboxed harness run of a trivial program (`bwrap` + harness,
  `calls` mode), next to its peers measured in the same run: a bare `python -I -S -c pass`
  subprocess (`bare_python_s`) and the harness without bwrap (`unsafe-fallback`, rlimits and
  `unshare` only). `bwrap_overhead_s` = sandboxed - fallback: what bubblewrap itself costs.
* `throughput` (per test format: asserts, check, io): programs verified per second through
  `VerifierPool(num_workers=--workers)` (cache off, distinct honest programs, 3 visible and 2
  hidden tests each), and sequentially in this process (`in_process_per_s`) for reference.
  `check` starts two sandboxes per program (the check and the candidate), `io` one per test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_verify.verifiers import sandbox  # noqa: E402
from jaxrl_verify.verifiers.code import verify_code  # noqa: E402
from jaxrl_verify.verifiers.pool import VerifierPool  # noqa: E402


def _median_time(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def startup(repeats: int) -> dict:
  spec = [sandbox.Spec({"mode": "calls", "program": "x = 1", "calls": ["x"]})]
  limits = sandbox.Limits(wall_s=10)
  exe, _ = sandbox._interpreter_paths()
  bare = _median_time(lambda: subprocess.run([exe, "-I", "-S", "-c", "pass"], check=True), repeats)
  boxed = _median_time(lambda: sandbox.run_group(spec, limits, backend="bwrap"), repeats)
  no_bwrap = _median_time(
    lambda: sandbox.run_group(spec, limits, backend=sandbox.FALLBACK, bwrap_path="/nonexistent"),
    repeats,
  )
  return {
    "config": "startup",
    "sandboxed_s": round(boxed, 4),
    "fallback_s": round(no_bwrap, 4),
    "bare_python_s": round(bare, 4),
    "bwrap_overhead_s": round(boxed - no_bwrap, 4),
    "repeats": repeats,
  }


def _requests(fmt: str, n: int) -> list[dict]:
  out = []
  for i in range(n):
    if fmt == "io":
      program = f"a, b = map(int, input().split())\nprint(a + b + {i} - {i})"
      fields = {
        "io": [{"input": f"{i} {k}", "output": str(i + k)} for k in range(3)],
        "hidden_tests": [{"input": f"{k} {i}", "output": str(i + k)} for k in (7, 8)],
      }
    else:
      program = f"def add(a, b):\n  return a + b + {i} - {i}"
      asserts = [f"assert add({i}, {k}) == {i + k}" for k in range(5)]
      if fmt == "asserts":
        fields = {"tests": asserts[:3], "hidden_tests": asserts[3:]}
      else:
        check = "def check(candidate):\n" + "".join(
          f"  assert candidate({i}, {k}) == {i + k}\n" for k in range(3)
        )
        fields = {"check": check, "entry_point": "add", "hidden_tests": asserts[3:]}
    out.append({"completion": f"```python\n{program}\n```", "fields": dict(fields, timeout_s=10)})
  return out


def throughput(fmt: str, n: int, workers: int) -> dict:
  requests = _requests(fmt, n)
  with VerifierPool(num_workers=workers, timeout_s=30, cache_size=0) as pool:
    pool.map(
      [
        {
          "verifier": "code",
          "completion": "x = 1",
          "reference": None,
          "fields": {"tests": ["assert x == 1"]},
        }
      ]
      * workers
    )  # warm the workers
    t0 = time.perf_counter()
    verdicts = pool.map(
      {"verifier": "code", "completion": r["completion"], "reference": None, "fields": r["fields"]}
      for r in requests
    )
    pool_s = time.perf_counter() - t0
  bad = [v for v in verdicts if v.status != "ok"]
  if bad:
    raise RuntimeError(f"{len(bad)} honest {fmt} programs failed, e.g. {bad[0]}")
  k = max(n // 4, 1)
  t0 = time.perf_counter()
  for r in requests[:k]:
    verify_code(r["completion"], None, **r["fields"])
  in_process_s = (time.perf_counter() - t0) / k
  return {
    "config": f"throughput/{fmt}",
    "workers": workers,
    "programs": n,
    "pool_per_s": round(n / pool_s, 2),
    "in_process_per_s": round(1 / in_process_s, 2),
    "cpus": os.cpu_count(),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--programs", type=int, default=40)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  print(json.dumps(startup(args.repeats)), flush=True)
  for fmt in ("asserts", "check", "io"):
    print(json.dumps(throughput(fmt, args.programs, args.workers)), flush=True)


if __name__ == "__main__":
  main()
