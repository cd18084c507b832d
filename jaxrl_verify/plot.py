"""Reward curve of a run: ``python -m jaxrl_verify.plot WORKDIR`` -> ``WORKDIR/reward_curve.png``.

Plots ``reward/mean`` and ``accuracy`` per training step (raw, faint, plus a smoothed line)
and ``eval/accuracy`` as points, from the run's ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

# Figure + savefig renders PNG through Agg without touching pyplot's global backend state,
# so plotting from a training loop or a headless host never needs a display.
from matplotlib.figure import Figure

from jaxrl_verify import files
from jaxrl_verify.metrics import read_metrics

OUTPUT_FILE = "reward_curve.png"
TRAIN_KEYS = ("reward/mean", "accuracy")
EVAL_KEYS = ("eval/accuracy",)


def ema_smooth(values: Sequence[float], weight: float = 0.9) -> np.ndarray:
  """TensorBoard-style debiased exponential moving average.

  ``s_i = weight * s_{i-1} + (1 - weight) * x_i`` with ``s_{-1} = 0``, divided by
  ``1 - weight**(i + 1)`` so early points are not pulled towards zero.

  Args:
    values: the series, in step order.
    weight: 0 (no smoothing) to <1 (heavy smoothing).

  Returns:
    The smoothed series, same length.
  """
  smoothed = np.empty(len(values), np.float64)
  acc = 0.0
  for i, x in enumerate(values):
    acc = weight * acc + (1.0 - weight) * x
    smoothed[i] = acc / (1.0 - weight ** (i + 1))
  return smoothed


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  points = [
    (r["step"], float(r[key]))
    for r in records
    if isinstance(r.get(key), int | float) and math.isfinite(r[key])
  ]
  points.sort()
  steps = np.array([p[0] for p in points], np.int64)
  values = np.array([p[1] for p in points], np.float64)
  return steps, values


def plot_reward_curve(workdir: str | os.PathLike, *, smoothing: float = 0.9) -> str:
  """Writes ``workdir/reward_curve.png`` from ``workdir/metrics.jsonl``.

  Args:
    workdir: a run directory written by ``MetricsWriter``.
    smoothing: EMA weight of the smoothed lines (see ``ema_smooth``).

  Returns:
    The path of the PNG.

  Raises:
    FileNotFoundError: no ``metrics.jsonl`` in ``workdir``.
    ValueError: the file has none of the plotted keys.
  """
  records = read_metrics(workdir)
  fig = Figure(figsize=(8, 4.5), dpi=100)
  ax = fig.add_subplot()
  plotted = False
  for key, color in zip(TRAIN_KEYS, ("tab:blue", "tab:orange")):
    steps, values = _series(records, key)
    if len(steps) == 0:
      continue
    ax.plot(steps, values, color=color, alpha=0.25, linewidth=1)
    ax.plot(steps, ema_smooth(values, smoothing), color=color, linewidth=2, label=key)
    plotted = True
  for key in EVAL_KEYS:
    steps, values = _series(records, key)
    if len(steps):
      ax.plot(steps, values, "o", color="tab:green", label=key)
      plotted = True
  if not plotted:
    raise ValueError(
      f"metrics.jsonl in {workdir} has none of {TRAIN_KEYS + EVAL_KEYS}; log at least one of "
      "them with MetricsWriter."
    )
  ax.set_xlabel("step")
  ax.set_ylabel("value")
  ax.set_title(os.path.basename(os.path.normpath(os.fspath(workdir))))
  ax.grid(alpha=0.3)
  ax.legend(loc="best")
  fig.tight_layout()
  path = os.path.join(os.fspath(workdir), OUTPUT_FILE)
  fig.savefig(path, format="png")
  return path


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.plot", description="Plot a run's reward curve."
  )
  parser.add_argument("workdir", help="run directory holding metrics.jsonl")
  parser.add_argument("--smoothing", type=float, default=0.9, help="EMA weight in [0, 1)")
  args = parser.parse_args(argv)
  if not 0.0 <= args.smoothing < 1.0:
    parser.error(f"--smoothing must be in [0, 1), got {args.smoothing}")
  return files.run_cli("plot", lambda: plot_reward_curve(args.workdir, smoothing=args.smoothing))


if __name__ == "__main__":
  sys.exit(main())
