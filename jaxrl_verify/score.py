r"""Batch-score a JSONL file of completions through the verifier pool.

  python -m jaxrl_verify.score --verifier=math --input=IN.jsonl --output=OUT.jsonl \
      [--workers=2] [--timeout=5] [--memory_mb=2048] [--imports=my.verifiers]

Input lines: `{"completion": str, "reference": ..., **fields}`; every key other than
`completion` and `reference` is passed to the verifier as a field (e.g. `tests`,
`entry_point` for `--verifier=code`; `system`, `spec` for `--verifier=simulator`, whose
lines, like the code verifier's, need no `reference`). Output: one line per input line, in
order: the input object plus `status`, `reward`, `latency_s`, `reason` (and verdict extras such as
`hidden_reward`). A malformed line gets `status=invalid` and a reason naming its line
number; it never stops the run. A summary (counts by status, throughput including pool
start-up, latency percentiles) goes to stderr as one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import json
import sys
import time
from typing import Any

from jaxrl_verify import files
from jaxrl_verify.verifiers.base import Verdict
from jaxrl_verify.verifiers.pool import VerifierPool

# Deadlines by verifier: running a program's tests needs far longer than a sympy check.
DEFAULT_TIMEOUT_S = {"code": 30.0, "simulator": 30.0}
_BUILTIN = ("math", "code", "countdown", "simulator")
# Verifiers whose tests are the reference (the `reference` key may be left out).
_REFERENCE_OPTIONAL = ("code", "simulator")


def parse_line(
  line: str, line_no: int, verifier: str = "math"
) -> tuple[dict[str, Any] | None, Verdict | None]:
  """(object, None) for a well-formed input line, else (echo object, invalid Verdict)."""
  if not line.strip():
    return {"line": line_no}, Verdict("invalid", 0.0, reason=f"line {line_no}: empty line")
  try:
    obj = json.loads(line)
  except json.JSONDecodeError as e:
    reason = f"line {line_no}: not valid JSON ({e.msg} at column {e.colno})"
    return {"line": line_no, "raw": line.rstrip("\n")[:200]}, Verdict("invalid", 0.0, reason=reason)
  if not isinstance(obj, dict):
    reason = f"line {line_no}: expected a JSON object, got {type(obj).__name__}"
    return {"line": line_no, "raw": obj}, Verdict("invalid", 0.0, reason=reason)
  required = ("completion",) if verifier in _REFERENCE_OPTIONAL else ("completion", "reference")
  missing = [k for k in required if k not in obj]
  if missing:
    reason = f"line {line_no}: missing key(s) {', '.join(missing)}"
    return obj, Verdict("invalid", 0.0, reason=reason)
  if not isinstance(obj["completion"], str):
    reason = f"line {line_no}: 'completion' must be a string"
    return obj, Verdict("invalid", 0.0, reason=reason)
  return obj, None


def _check_verifier(name: str, imports: list[str]) -> None:
  """Fails fast on an unknown verifier name, without importing sympy into this process."""
  if name in _BUILTIN and importlib.util.find_spec(f"jaxrl_verify.verifiers.{name}"):
    return
  from jaxrl_verify.verifiers import base

  for module in imports:
    importlib.import_module(module)
  if name not in base.names():
    raise ValueError(
      f"Unknown --verifier={name!r}; choose one of {base.names()} or pass the module "
      "that registers it with --imports."
    )


def score_file(
  verifier: str,
  input_path: str,
  output_path: str,
  workers: int = 2,
  timeout_s: float | None = None,
  memory_mb: int = 2048,
  imports: tuple[str, ...] = (),
) -> dict[str, float]:
  """Scores every line of `input_path` into `output_path`; returns the summary."""
  start = time.perf_counter()
  timeout_s = timeout_s or DEFAULT_TIMEOUT_S.get(verifier, 5.0)
  entries: list[tuple[dict[str, Any], int | Verdict]] = []
  files.check_output_path(input_path, output_path)
  files.check_input_file(input_path)
  try:
    infile = open(input_path, "rb")  # noqa: SIM115 - closed below.
  except OSError as e:
    raise OSError(f"Cannot read --input {input_path}: {e.strerror}; check the path.") from e
  pool = VerifierPool(workers, timeout_s, memory_mb or None, imports=imports)
  try:
    with infile:
      for line_no, raw in enumerate(infile, start=1):
        try:
          line = files.decode_line(raw, input_path, line_no)
        except ValueError as e:  # Like a malformed line: an invalid verdict, the rest scored.
          entries.append(({"line": line_no}, Verdict("invalid", 0.0, reason=str(e))))
          continue
        obj, bad = parse_line(line, line_no, verifier)
        if bad is not None:
          entries.append((obj, bad))
          continue
        fields = {k: v for k, v in obj.items() if k not in ("completion", "reference")}
        entries.append(
          (obj, pool.submit(verifier, obj["completion"], obj.get("reference"), fields))
        )
    if not entries:
      raise ValueError(f"--input {input_path} holds no lines; add one JSON object per line.")
    counts: collections.Counter[str] = collections.Counter()
    # Written under a temporary name and renamed when complete: an interrupted run never
    # leaves a partial file that looks like a finished one.
    with files.atomic_output(output_path) as out:
      for obj, pending in entries:
        verdict = pending if isinstance(pending, Verdict) else pool.result(pending)
        counts[verdict.status] += 1
        out.write(json.dumps({**obj, **verdict.to_json()}) + "\n")
    stats = pool.stats()
  finally:
    pool.close()
  wall_s = time.perf_counter() - start
  summary = {
    "verifier": verifier,
    "items": len(entries),
    "wall_s": round(wall_s, 3),
    "throughput_per_s": round(len(entries) / wall_s, 2) if wall_s > 0 else 0.0,
    **{f"status_{k}": counts[k] for k in ("ok", "wrong", "invalid", "timeout", "error")},
    **{k: round(v, 6) for k, v in stats.items()},
  }
  return summary


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--verifier", required=True, help="registered verifier name, e.g. math")
  parser.add_argument("--input", required=True, help="input JSONL")
  parser.add_argument("--output", required=True, help="output JSONL (overwritten)")
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--timeout", type=float, default=None, help="per-item deadline (s)")
  parser.add_argument("--memory_mb", type=int, default=2048, help="per-worker cap; 0: none")
  parser.add_argument("--imports", default="", help="comma-separated modules to import")
  args = parser.parse_args(argv)
  if args.workers < 1:
    parser.error(f"--workers must be at least 1, got {args.workers}")
  imports = tuple(m for m in args.imports.split(",") if m)

  def body() -> str:
    _check_verifier(args.verifier, list(imports))
    summary = score_file(
      args.verifier,
      args.input,
      args.output,
      args.workers,
      args.timeout,
      args.memory_mb,
      imports,
    )
    return json.dumps(summary)

  return files.run_cli("score", body)


if __name__ == "__main__":
  sys.exit(main())
