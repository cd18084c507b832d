"""Multi-step arithmetic word problems with exact (sympy) answers.

A problem is a short story about one quantity changed step by step, e.g.

  question: Ana has 7 liters of water. Ana gets 5 more. Ana uses 3.
            How many liters of water does Ana have now?
  solution: 7 + 5 = 12. 12 - 3 = 9. \\boxed{9}
  answer:   9

The style is short and regular so a tiny transformer can learn it in minutes.

| level | steps | operations | numbers |
|---|---|---|---|
| 1 | 1 | + - | 1..9 |
| 2 | 2 | + - | 1..50 |
| 3 | 2 | + - * | 1..50, factors 2..5 |
| 4 | 3 | + - * | 1..99, factors 2..9 |
| 5 | 3 | + - * / | 1..99, divisors 2..9 (rational answers such as 46/5) |

Quantities never go negative. Each example also has `expression`, the fully
parenthesised computation (e.g. `((7 + 5) - 3)`), for independent checking.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import synthetic

# level -> (steps, operations, max number, max factor/divisor)
LEVELS = {
  1: (1, "+-", 9, 1),
  2: (2, "+-", 50, 1),
  3: (2, "+-*", 50, 5),
  4: (3, "+-*", 99, 9),
  5: (3, "+-*/", 99, 9),
}
NAMES = ("Ana", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jon", "Kim")
UNITS = ("liters of water", "kilograms of rice", "meters of rope", "cups of flour", "coins")
_SENTENCES = {
  "+": "{name} gets {b} more.",
  "-": "{name} uses {b}.",
  "*": "{name} then has {b} times as many.",
  "/": "{name} splits them into {b} equal parts and keeps one part.",
}


class Arithmetic(synthetic.SyntheticBuilder):
  """Multi-step arithmetic word problems; answers are exact integers or fractions."""

  MAX_LEVEL = max(LEVELS)
  DEFAULT_DIFFICULTY = (1, 2, 3)

  def _extra_features(self) -> dict[str, Any]:
    return {"expression": tfds.features.Text()}

  def _sample(self, rng: np.random.Generator, level: int) -> dict[str, Any]:
    return sample_problem(rng, level)


def sample_problem(rng: np.random.Generator, level: int) -> dict[str, Any]:
  """One problem at `level` as a dict of question, solution, answer, expression."""
  import sympy  # Imported here: only generation needs it.

  steps, ops, max_n, max_factor = LEVELS[level]
  name = NAMES[rng.integers(len(NAMES))]
  unit = UNITS[rng.integers(len(UNITS))]
  a = int(rng.integers(1, max_n + 1))
  value = sympy.Rational(a)
  sentences = [f"{name} has {a} {unit}."]
  work, expression = [], str(a)
  for _ in range(steps):
    op = ops[rng.integers(len(ops))]
    if op == "-" and value < 1:
      op = "+"  # Keep quantities non-negative.
    if op in "*/":
      b = int(rng.integers(2, max_factor + 1))
    elif op == "-":
      b = int(rng.integers(1, min(max_n, int(sympy.floor(value))) + 1))
    else:
      b = int(rng.integers(1, max_n + 1))
    new_value = {
      "+": value + b,
      "-": value - b,
      "*": value * b,
      "/": value / b,
    }[op]
    sentences.append(_SENTENCES[op].format(name=name, b=b))
    work.append(f"{value} {op} {b} = {new_value}.")
    expression = f"({expression} {op} {b})"
    value = new_value
  sentences.append(f"How many {unit} does {name} have now?")
  answer = str(value)  # sympy prints exact rationals as `46/5`.
  return {
    "question": " ".join(sentences),
    "solution": " ".join(work) + f" \\boxed{{{answer}}}",
    "answer": answer,
    "expression": expression,
  }
