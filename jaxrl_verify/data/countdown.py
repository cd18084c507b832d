"""Countdown: reach a target from given numbers with + - * / and parentheses.

Each given number may be used at most once (not every number must be used); the
answer is one expression in `\\boxed{...}`, checked by the `countdown` verifier.
Every problem is solvable: the target is built from a random expression over a
subset of the numbers whose intermediate results are all positive integers.

| level | numbers | drawn from | used by the built expression |
|---|---|---|---|
| 1 | 3 | 1..20 | 2 |
| 2 | 3 | 1..25 | 3 |
| 3 | 4 | 1..25 | 3 or 4 |
| 4 | 5 | 1..50 | 3 to 5 |
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import synthetic

# level -> (how many numbers, max number, (min, max) numbers used by the solution)
LEVELS = {1: (3, 20, (2, 2)), 2: (3, 25, (3, 3)), 3: (4, 25, (3, 4)), 4: (5, 50, (3, 5))}
MAX_TARGET = 999


class Countdown(synthetic.SyntheticBuilder):
  """Countdown number puzzles with a guaranteed solution."""

  MAX_LEVEL = max(LEVELS)
  DEFAULT_DIFFICULTY = (1, 2)

  def _extra_features(self) -> dict[str, Any]:
    return {"numbers": tfds.features.Sequence(np.int64), "target": np.int64}

  def _sample(self, rng: np.random.Generator, level: int) -> dict[str, Any]:
    while True:
      problem = sample_problem(rng, level)
      if problem is not None:
        return problem


def sample_problem(rng: np.random.Generator, level: int) -> dict[str, Any] | None:
  """One puzzle at `level`, or None when the random expression was unusable."""
  count, max_n, (lo, hi) = LEVELS[level]
  numbers = [int(n) for n in rng.integers(1, max_n + 1, size=count)]
  used = rng.permutation(count)[: int(rng.integers(lo, hi + 1))]
  # Combine (value, text) pairs pairwise, as a person playing Countdown would.
  items = [(Fraction(numbers[i]), str(numbers[i])) for i in used]
  work = []
  while len(items) > 1:
    i, j = rng.choice(len(items), size=2, replace=False)
    (x, xs), (y, ys) = items[i], items[j]
    op = "+-*/"[rng.integers(4)]
    value = {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]
    if value <= 0 or value.denominator != 1 or value > 10 * MAX_TARGET:
      return None
    work.append(f"{x} {op} {y} = {value}.")
    items = [it for k, it in enumerate(items) if k not in (i, j)]
    items.append((value, f"({xs} {op} {ys})"))
  target, expression = items[0][0], items[0][1][1:-1]  # Drop the outermost parentheses.
  if target > MAX_TARGET or int(target) in numbers:
    return None
  shown = ", ".join(map(str, numbers))
  return {
    "question": (
      f"Use the numbers {shown} to make {target}. Use + - * / and parentheses, each number "
      "at most once. Give the expression in \\boxed{}."
    ),
    "solution": " ".join(work) + f" \\boxed{{{expression}}}",
    "answer": str(target),
    "numbers": numbers,
    "target": int(target),
  }
