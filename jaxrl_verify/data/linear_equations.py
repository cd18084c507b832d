"""Linear equations in one unknown: solve a*x + b = c*x + d for x.

  question: Solve for x: 3x - 5 = 10.
  solution: 3x = 10 + 5 = 15. x = 15/3 = 5. \\boxed{5}
  answer:   5

| level | form | coefficients | solution |
|---|---|---|---|
| 1 | x + b = d | b in -30..30 | integer in -30..30 |
| 2 | a x + b = d | a in 2..9 | integer in -30..30 |
| 3 | a x + b = d | a in 2..9, b, d in -30..30 | rational |
| 4 | a x + b = c x + d | a, c in -9..9, a != c | rational |

Answers are exact (`str(Fraction)`, e.g. `-7/3`), a form the `math` verifier accepts.
`coefficients` holds [a, b, c, d] for independent checking.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import synthetic

MAX_LEVEL = 4


class LinearEquations(synthetic.SyntheticBuilder):
  """Linear equations a*x + b = c*x + d with exact integer or rational answers."""

  MAX_LEVEL = MAX_LEVEL
  DEFAULT_DIFFICULTY = (1, 2, 3)

  def _extra_features(self) -> dict[str, Any]:
    return {"coefficients": tfds.features.Sequence(np.int64)}

  def _sample(self, rng: np.random.Generator, level: int) -> dict[str, Any]:
    return sample_problem(rng, level)


def sample_problem(rng: np.random.Generator, level: int) -> dict[str, Any]:
  """One equation at `level` as a dict of question, solution, answer, coefficients."""
  r = lambda lo, hi: int(rng.integers(lo, hi + 1))
  c = 0
  if level in (1, 2):
    a = 1 if level == 1 else r(2, 9)
    x = r(-30, 30)
    b = _nonzero(r, -30, 30)
    d = a * x + b
  elif level == 3:
    a, b, d = r(2, 9), _nonzero(r, -30, 30), r(-30, 30)
  else:
    a, c = _nonzero(r, -9, 9), _nonzero(r, -9, 9)
    while c == a:
      c = _nonzero(r, -9, 9)
    b, d = r(-30, 30), r(-30, 30)
  coef, rhs = a - c, d - b
  answer = Fraction(rhs, coef)
  lhs_text = _linear(a, b)
  rhs_text = _linear(c, d) if c else str(d)
  work = []
  if c:
    work.append(f"{_term(a)} - {_paren(c)}x = {_term(coef)}.")
  work.append(f"{_term(coef)} = {d} - {_paren(b)} = {rhs}.")
  if coef != 1:
    work.append(f"x = {rhs}/{_paren(coef)} = {answer}.")
  return {
    "question": f"Solve for x: {lhs_text} = {rhs_text}.",
    "solution": " ".join(work) + f" \\boxed{{{answer}}}",
    "answer": str(answer),
    "coefficients": [a, b, c, d],
  }


def _nonzero(r, lo: int, hi: int) -> int:
  while True:
    v = r(lo, hi)
    if v:
      return v


def _term(a: int) -> str:
  return {1: "x", -1: "-x"}.get(a, f"{a}x")


def _linear(a: int, b: int) -> str:
  if b == 0:
    return _term(a)
  return f"{_term(a)} {'+' if b > 0 else '-'} {abs(b)}"


def _paren(v: int) -> str:
  return f"({v})" if v < 0 else str(v)
