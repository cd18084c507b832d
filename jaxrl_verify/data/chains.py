r"""Arithmetic chains: multi-step problems whose every step can be checked exactly.

A problem is a start value and a list of operations; the solution computes one
operation per line and ends with the boxed result:

  question: Start with 7. Add 5. Subtract 3. Multiply by 2. What is the result?
  solution: 7 + 5 = 12.
            12 - 3 = 9.
            9 * 2 = 18.
            \boxed{18}
  answer:   18

| level | steps | start | + / - operand | * factor |
|---|---|---|---|---|
| L = 1..6 | L + 2 (3..8) | 1..20 | 1..9 | 2..3 |

Values stay in 0..999 (a `-` that would go negative becomes `+`; a `*` that would pass
999 becomes `+`). Each example also stores `start` and `ops` (e.g. `+5 -3 *2`), which
`first_error` uses to check a solution step by step. **That check is for measuring
only**: process supervision labels steps with the final-answer verifier (Monte-Carlo
rollouts), and compares its labels with these to say how good they are.

`corrupt` writes solutions with a planted first error at a known step, of three kinds
(`wrong_result`, `wrong_operation`, `wrong_number`); the steps after it continue
consistently from the wrong value, as a model that made the slip would, so the boxed
answer is wrong too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import synthetic

MAX_VALUE = 999
ERROR_KINDS = ("wrong_result", "wrong_operation", "wrong_number")
_WORDS = {"+": "Add {b}.", "-": "Subtract {b}.", "*": "Multiply by {b}."}
_STEP = re.compile(r"^\s*(\d+)\s*([+\-*])\s*(\d+)\s*=\s*(-?\d+)\s*\.?\s*$")
_BOXED = re.compile(r"^\s*\\boxed\{\s*(-?\d+)\s*\}\s*$")

Op = tuple[str, int]


class Chains(synthetic.SyntheticBuilder):
  """Arithmetic chains of 3-8 exactly checkable steps."""

  MAX_LEVEL = 6
  DEFAULT_DIFFICULTY = (1, 2, 3)

  def _extra_features(self) -> dict[str, Any]:
    return {"start": np.int64, "ops": tfds.features.Text()}

  def _sample(self, rng: np.random.Generator, level: int) -> dict[str, Any]:
    return sample_problem(rng, level)


def apply(x: int, op: Op) -> int:
  """x op b."""
  sign, b = op
  return {"+": x + b, "-": x - b, "*": x * b}[sign]


def format_ops(ops: Sequence[Op]) -> str:
  """`[("+", 5), ("-", 3)]` -> `"+5 -3"` (the stored `ops` field)."""
  return " ".join(f"{s}{b}" for s, b in ops)


def parse_ops(text: str) -> list[Op]:
  """The stored `ops` field back into (sign, operand) pairs."""
  return [(t[0], int(t[1:])) for t in text.split()]


def values(start: int, ops: Sequence[Op]) -> list[int]:
  """The running values: [start, after op 1, ..., after the last op]."""
  out = [int(start)]
  for op in ops:
    out.append(apply(out[-1], op))
  return out


def solution_steps(start: int, ops: Sequence[Op]) -> list[str]:
  """The correct solution as steps: one `x op b = y.` per operation, then `\\boxed{y}`."""
  vals = values(start, ops)
  steps = [f"{x} {s} {b} = {y}." for x, (s, b), y in zip(vals, ops, vals[1:])]
  return [*steps, f"\\boxed{{{vals[-1]}}}"]


def sample_problem(rng: np.random.Generator, level: int) -> dict[str, Any]:
  """One chain at `level`: question, solution (steps joined by newlines), answer, start, ops."""
  start = int(rng.integers(1, 21))
  x, ops = start, []
  for _ in range(level + 2):
    sign = "+-*"[rng.integers(3)]
    b = int(rng.integers(2, 4)) if sign == "*" else int(rng.integers(1, 10))
    if (sign == "-" and x - b < 0) or (sign == "*" and x * b > MAX_VALUE):
      sign = "+"
    if sign == "+" and x + b > MAX_VALUE:
      sign = "-"
    ops.append((sign, b))
    x = apply(x, (sign, b))
  words = " ".join(_WORDS[s].format(b=b) for s, b in ops)
  return {
    "question": f"Start with {start}. {words} What is the result?",
    "solution": "\n".join(solution_steps(start, ops)),
    "answer": str(x),
    "start": start,
    "ops": format_ops(ops),
  }


def first_error(start: int, ops: Sequence[Op], steps: Sequence[str]) -> int:
  """Index of the first wrong step of `steps`, or -1 when every step is right.

  Step k < len(ops) is right when it reads `x op b = y.` with x the correct value so
  far, (op, b) the k-th operation and y its correct result; step len(ops) is right when
  it is `\\boxed{answer}`. A solution with more steps than that is wrong at the first
  extra one; one with fewer is wrong at the first missing one (its index).
  """
  vals = values(start, ops)
  for k, text in enumerate(steps):
    if k < len(ops):
      m = _STEP.match(text)
      if not m:
        return k
      x, sign, b, y = int(m[1]), m[2], int(m[3]), int(m[4])
      if (x, (sign, b), y) != (vals[k], tuple(ops[k]), vals[k + 1]):
        return k
    elif k == len(ops):
      m = _BOXED.match(text)
      if not m or int(m[1]) != vals[-1]:
        return k
    else:
      return k
  return -1 if len(steps) == len(ops) + 1 else len(steps)


def step_labels(start: int, ops: Sequence[Op], steps: Sequence[str]) -> list[bool]:
  """Ground-truth step labels: True before the first error, False from it on (PRM800K's and
  ProcessBench's convention: after the first error no step can lead to the answer)."""
  err = first_error(start, ops, steps)
  return [err < 0 or k < err for k in range(len(steps))]


def corrupt(
  start: int, ops: Sequence[Op], rng: np.random.Generator, *, kind: str, at: int
) -> list[str]:
  """A solution whose first error is at computation step `at`, of `kind`; later steps continue
  consistently from the wrong value, and the boxed answer is the wrong final value.

  Kinds: `wrong_result` (y off by 1-3), `wrong_operation` (another sign, same operand, its
  result computed right), `wrong_number` (x is not the running value: another number of
  the problem or one off, the result computed right from it).

  Raises:
    ValueError: `kind` unknown or `at` outside the computation steps.
  """
  if kind not in ERROR_KINDS:
    raise ValueError(f"Unknown error kind {kind!r}; choose one of {ERROR_KINDS}.")
  if not 0 <= at < len(ops):
    raise ValueError(f"at={at} is not a computation step of a {len(ops)}-step chain.")
  vals = values(start, ops)
  steps = solution_steps(start, ops)[:at]
  x, (sign, b) = vals[at], ops[at]
  if kind == "wrong_result":
    y = vals[at + 1] + int(rng.choice([-3, -2, -1, 1, 2, 3]))
    y = y if y >= 0 else vals[at + 1] + 1
  elif kind == "wrong_operation":
    # Another sign whose result differs (2 * 2 = 2 + 2 would be a wrong step with a right
    # answer); where none does, the slip is in the result instead.
    right = vals[at + 1]
    signs = [s for s in "+-*" if s != sign and apply(x, (s, b)) not in (right,)]
    signs = [s for s in signs if apply(x, (s, b)) >= 0]
    sign = str(rng.choice(signs)) if signs else sign
    y = apply(x, (sign, b)) if signs else right + 1
  else:
    others = sorted({start, *(o for _, o in ops), x + 1, max(x - 1, 0)} - {x})
    x = int(rng.choice(others))
    y = apply(x, (sign, b))
  steps.append(f"{x} {sign} {b} = {y}.")
  for s, o in ops[at + 1 :]:  # Carried on from the wrong value, each step right from it.
    steps.append(f"{y} {s} {o} = {apply(y, (s, o))}.")
    y = apply(y, (s, o))
  return [*steps, f"\\boxed{{{y}}}"]
