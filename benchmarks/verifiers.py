r"""Throughput of the `math` verifier: in one process, through the pool, through the CLI.

  python benchmarks/verifiers.py [--n=1500] [--workers=1,2,4] [--skip_peer]

Items: `--n` distinct (completion, reference) pairs of five kinds (fraction, product,
polynomial, surd, tuple), half correct and half wrong, generated deterministically here,
so no cache can flatter a figure. Peer: Hugging Face math-verify's `verify(parse(gold),
parse(answer))` in one process, on the same items, in the same run (the machine is
shared, so only ratios measured together are meaningful). Pool and CLI figures include
pool start-up. Prints one JSON object per configuration on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from math import gcd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxrl_verify.verifiers.pool import VerifierPool  # noqa: E402


def make_items(n: int) -> list[dict]:
  """`n` distinct items cycling through five kinds; `expect_correct` alternates."""
  items, seen, i = [], set(), 0
  while len(items) < n:
    kind, correct = i % 5, (i // 5) % 2 == 0
    a, b, c = 2 + i % 37, 3 + (i * 7) % 41, 1 + (i * 13) % 29
    if kind == 0:  # fraction: unreduced LaTeX vs reduced slash form
      g = gcd(a * c, b * c)
      num, den = a * c // g + (0 if correct else 1), b * c // g
      comp, ref = rf"\frac{{{a * c}}}{{{b * c}}}", f"{num}/{den}"
    elif kind == 1:  # product: value vs unevaluated product
      comp, ref = str(a * b * c + (0 if correct else c)), rf"{a} \times {b} \cdot {c}"
    elif kind == 2:  # polynomial: factored vs expanded
      k = b + (0 if correct else 1)
      comp, ref = f"(x+{a})(x-{b})", f"x^2 + {a - k}x - {a * k}"
    elif kind == 3:  # surd: unsimplified vs simplified
      m = (2, 3, 5, 6, 7, 10, 11)[i % 7]
      comp, ref = rf"\sqrt{{{a * a * m}}}", rf"{a if correct else a + 1}\sqrt{{{m}}}"
    else:  # tuple: ordered pair with fractions
      pair = (a, rf"\frac{{{b if correct else b + c}}}{{{c}}}")
      comp, ref = rf"\left({pair[0]}, {pair[1]}\right)", f"({a}, {b}/{c})"
    completion = (
      f"Working through the steps gives the result. The final answer is $\\boxed{{{comp}}}$."
    )
    i += 1
    if (completion, ref) in seen:
      continue
    seen.add((completion, ref))
    items.append({"completion": completion, "reference": ref, "expect_correct": correct})
  return items


def _percentiles(lat: list[float]) -> dict[str, float]:
  lat = sorted(lat)
  pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
  return {"latency_p50_s": round(pick(0.5), 6), "latency_p99_s": round(pick(0.99), 6)}


def _report(config: str, items: list[dict], wall_s: float, lat: list[float], correct: list[bool]):
  agree = sum(c == it["expect_correct"] for c, it in zip(correct, items))
  out = {
    "config": config,
    "items": len(items),
    "wall_s": round(wall_s, 3),
    "verifications_per_s": round(len(items) / wall_s, 2),
    "agreement_with_labels": agree / len(items),
  }
  out.update(_percentiles(lat) if lat else {})
  print(json.dumps(out), flush=True)
  return out


def bench_peer(items: list[dict]) -> dict:
  from math_verify import parse, verify

  lat, correct = [], []
  start = time.perf_counter()
  for it in items:
    t = time.perf_counter()
    gold = parse(f"${it['reference']}$")
    correct.append(bool(verify(gold, parse(it["completion"]))))
    lat.append(time.perf_counter() - t)
  return _report("math_verify_in_process", items, time.perf_counter() - start, lat, correct)


def bench_in_process(items: list[dict]) -> dict:
  from jaxrl_verify.verifiers.math import verify_math

  lat, correct = [], []
  start = time.perf_counter()
  for it in items:
    t = time.perf_counter()
    correct.append(verify_math(it["completion"], it["reference"]).status == "ok")
    lat.append(time.perf_counter() - t)
  return _report("ours_in_process", items, time.perf_counter() - start, lat, correct)


def bench_pool(items: list[dict], workers: int) -> dict:
  start = time.perf_counter()
  with VerifierPool(workers, timeout_s=10.0) as pool:
    tickets = [pool.submit("math", it["completion"], it["reference"]) for it in items]
    verdicts = pool.results(tickets)
  wall_s = time.perf_counter() - start
  lat = [v.latency_s for v in verdicts]
  correct = [v.status == "ok" for v in verdicts]
  return _report(f"ours_pool_{workers}_workers", items, wall_s, lat, correct)


def bench_cli(items: list[dict], workers: int) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    src, dst = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
    with open(src, "w") as f:
      f.writelines(json.dumps(it) + "\n" for it in items)
    cmd = [sys.executable, "-m", "jaxrl_verify.score", "--verifier=math", f"--input={src}"]
    cmd += [f"--output={dst}", f"--workers={workers}"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
    wall_s = time.perf_counter() - start
    with open(dst) as f:
      rows = [json.loads(line) for line in f]
  lat = [r["latency_s"] for r in rows]
  return _report(
    f"ours_cli_{workers}_workers", items, wall_s, lat, [r["status"] == "ok" for r in rows]
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--n", type=int, default=1500)
  parser.add_argument("--workers", default="1,2,4")
  parser.add_argument("--skip_peer", action="store_true")
  args = parser.parse_args()
  items = make_items(args.n)
  peer = None if args.skip_peer else bench_peer(items)
  ours = bench_in_process(items)
  for w in (int(x) for x in args.workers.split(",")):
    bench_pool(items, w)
  cli = bench_cli(items, 2)
  if peer:
    ratios = {
      "config": "ratios_vs_math_verify_in_process",
      "ours_in_process": round(ours["verifications_per_s"] / peer["verifications_per_s"], 2),
      "ours_cli_2_workers": round(cli["verifications_per_s"] / peer["verifications_per_s"], 2),
    }
    print(json.dumps(ratios), flush=True)


if __name__ == "__main__":
  main()
