"""Measuring process supervision against ground-truth step labels (the chains task's checker).

- `label_agreement`: the fraction of steps whose Monte-Carlo (or PRM) label equals the
  ground truth, over all steps of all solutions (Math-Shepherd's label accuracy).
- `first_error_of`: a PRM's claimed first error: the first step whose score falls below
  `threshold`, or -1 (no error claimed).
- `processbench_f1`: ProcessBench's metric over first-error indices (-1 = correct solution):
  acc_error = accuracy on solutions with an error (the exact first wrong step found),
  acc_correct = accuracy on correct ones (no error claimed), f1 their harmonic mean.
"""

from __future__ import annotations

from collections.abc import Sequence


def label_agreement(pred: Sequence[Sequence[int]], truth: Sequence[Sequence[bool]]) -> float:
  """Fraction of steps with pred == truth.

  Raises:
    ValueError: a solution's label counts differ, or there are no steps.
  """
  agree = total = 0
  for i, (p, t) in enumerate(zip(pred, truth, strict=True)):
    if len(p) != len(t):
      raise ValueError(f"Solution {i} has {len(p)} predicted labels but {len(t)} true ones.")
    agree += sum(int(bool(a) == bool(b)) for a, b in zip(p, t))
    total += len(t)
  if not total:
    raise ValueError("No steps to compare.")
  return agree / total


def first_error_of(step_probs: Sequence[float], threshold: float = 0.5) -> int:
  """The first step scored below `threshold`, or -1."""
  return next((k for k, p in enumerate(step_probs) if p < threshold), -1)


def processbench_f1(pred: Sequence[int], truth: Sequence[int]) -> dict[str, float]:
  """{"acc_error", "acc_correct", "f1"} over first-error indices (-1: no error).

  A class with no solutions scores 0 (and so does f1).
  """
  err = [(p, t) for p, t in zip(pred, truth, strict=True) if t >= 0]
  ok = [p for p, t in zip(pred, truth, strict=True) if t < 0]
  acc_error = sum(p == t for p, t in err) / len(err) if err else 0.0
  acc_correct = sum(p < 0 for p in ok) / len(ok) if ok else 0.0
  s = acc_error + acc_correct
  return {
    "acc_error": acc_error,
    "acc_correct": acc_correct,
    "f1": 2 * acc_error * acc_correct / s if s else 0.0,
  }
