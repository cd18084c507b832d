r"""Score the steps of JSONL solutions with a trained reward model.

  python -m jaxrl_verify.process.score_steps --checkpoint RM_WORKDIR --input IN.jsonl \
      --output OUT.jsonl [--aggregate min|product|last] [--batch-size 16] [--step N]

RM_WORKDIR is the `--workdir` of a `process.train_rm` run (its latest checkpoint, or
`--step`). Input lines: `{"prompt": str, "steps": [str, ...]}` (other fields are kept).
Output lines: the input plus `step_scores` (the PRM's probability that each step is good;
an ORM's is meaningful at the last step) and `score` (the solution's score by
`--aggregate`). Written to a temporary file and renamed when complete.
"""

from __future__ import annotations

import argparse
import sys

import jax

from jaxrl_verify import files
from jaxrl_verify.process import rm, rm_setup
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.sampler import jsonl


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.process.score_steps",
    description="Add PRM/ORM step scores to JSONL solutions.",
  )
  parser.add_argument("--checkpoint", required=True, help="the workdir of a train_rm run")
  parser.add_argument("--input", required=True, help='.jsonl of {"prompt", "steps"}')
  parser.add_argument("--output", required=True, help="output .jsonl (input + step_scores)")
  parser.add_argument("--aggregate", default="min", choices=rm.SOLUTION_SCORES)
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default latest)")
  args = parser.parse_args(argv)
  if args.batch_size < 1:
    parser.error("--batch-size must be a positive integer.")
  try:
    jsonl.check_output_path(args.input, args.output)
  except ValueError as e:
    parser.error(str(e))
  return args


def read(path: str) -> list[dict]:
  records = jsonl.read_jsonl(path)
  for r in records:
    n, steps = r["_line"], r.get("steps")
    if not isinstance(r.get("prompt"), str):
      raise ValueError(f'{path} line {n} needs "prompt": the problem text as a string.')
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
      raise ValueError(f'{path} line {n} needs "steps": a non-empty list of strings.')
  return records


def main(argv=None) -> int:
  args = parse_args(argv)

  def body() -> str:
    records = read(args.input)
    c, tok, graphdef, params = rm_setup.restore(args.checkpoint, step=args.step)
    fmt = steps_lib.step_format(c.data.step_format)
    score = jax.jit(rm.make_score_fn(graphdef))
    scores = rm.score_solutions(
      score,
      params,
      tok,
      fmt,
      [r["prompt"] for r in records],
      [r["steps"] for r in records],
      max_len=c.rm.max_len,
      max_steps=max(c.rm.max_steps, max((len(r["steps"]) for r in records), default=1)),
      batch_size=args.batch_size,
    )
    for r, step_scores in zip(records, scores):
      r["step_scores"] = step_scores
      r["score"] = rm.solution_score(step_scores, args.aggregate)
    jsonl.write_jsonl_atomically(args.output, records)
    return f"scored {len(records)} solutions into {args.output}"

  return files.run_cli("score_steps", body)


if __name__ == "__main__":
  sys.exit(main())
