"""Curves of runs, from their ``metrics.jsonl``.

  python -m jaxrl_verify.plot WORKDIR                   # -> WORKDIR/reward_curve.png
  python -m jaxrl_verify.plot --overoptimisation WORKDIR [WORKDIR ...] [--output PNG]

The reward curve: ``reward/mean`` and ``accuracy`` per training step (raw, faint, plus a
smoothed line) and ``eval/accuracy`` as points. The overoptimisation plot (runs trained by
a learned reward; default output WORKDIR/overoptimisation.png of the first run): the
proxy (the reward model's score) and the gold reward (the verifier's) of the training
samples against sqrt(KL from the initial policy), Gao et al. (2022)'s axis, and against
the step, with the held-out eval's ``eval/proxy`` and ``eval/gold_accuracy`` as points;
one colour per run.
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
OVEROPT_FILE = "overoptimisation.png"
TRAIN_KEYS = ("reward/mean", "accuracy")
EVAL_KEYS = ("eval/accuracy",)
OVEROPT_KEYS = ("reward/proxy", "reward/gold", "kl_from_init")


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


def plot_overoptimisation(
  workdirs: Sequence[str | os.PathLike],
  output: str | os.PathLike | None = None,
  *,
  smoothing: float = 0.9,
) -> str:
  """Writes the overoptimisation plot of `workdirs` (see the module docstring).

  Returns:
    The path of the PNG (default: `OVEROPT_FILE` in the first workdir).

  Raises:
    FileNotFoundError: a workdir has no ``metrics.jsonl``.
    ValueError: a run logged none of `OVEROPT_KEYS` (it was not trained by a learned reward).
  """
  fig = Figure(figsize=(12, 4.5), dpi=100)
  by_kl, by_step = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
  colors = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")
  for n, workdir in enumerate(workdirs):
    records = read_metrics(workdir)
    name, color = os.path.basename(os.path.normpath(os.fspath(workdir))), colors[n % len(colors)]
    train = [r for r in records if all(isinstance(r.get(k), int | float) for k in OVEROPT_KEYS)]
    if not train:
      raise ValueError(
        f"metrics.jsonl in {workdir} has no step with all of {OVEROPT_KEYS}; plot a run "
        "trained by a learned reward (config.reward.rm_dir or reward.bootstrap)."
      )
    steps = np.array([r["step"] for r in train])
    root_kl = np.sqrt(np.maximum([r["kl_from_init"] for r in train], 0.0))
    for key, style in (("reward/proxy", "--"), ("reward/gold", "-")):
      smooth = ema_smooth([float(r[key]) for r in train], smoothing)
      label = f"{name} {key.split('/')[1]}"
      by_kl.plot(ema_smooth(root_kl, smoothing), smooth, style, color=color, label=label)
      by_step.plot(steps, smooth, style, color=color, label=label)
    for key, marker in (("eval/proxy", "^"), ("eval/gold_accuracy", "o")):
      s, v = _series(records, key)
      if len(s):
        by_step.plot(s, v, marker, color=color, label=f"{name} {key}")
  by_kl.set_xlabel("sqrt(KL from the initial policy), nats^0.5 (smoothed)")
  by_step.set_xlabel("step")
  for ax in (by_kl, by_step):
    ax.set_ylabel("reward (0-1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
  fig.suptitle("proxy (reward model, dashed) vs gold (verifier, solid)")
  fig.tight_layout()
  path = os.fspath(output or os.path.join(os.fspath(workdirs[0]), OVEROPT_FILE))
  fig.savefig(path, format="png")
  return path


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.plot", description="Plot a run's reward curve."
  )
  parser.add_argument("workdir", nargs="+", help="run directory holding metrics.jsonl")
  parser.add_argument("--smoothing", type=float, default=0.9, help="EMA weight in [0, 1)")
  parser.add_argument(
    "--overoptimisation",
    action="store_true",
    help="proxy and gold reward against sqrt(KL) and steps, for one or more runs",
  )
  parser.add_argument("--output", default=None, help="PNG path (--overoptimisation only)")
  args = parser.parse_args(argv)
  if not 0.0 <= args.smoothing < 1.0:
    parser.error(f"--smoothing must be in [0, 1), got {args.smoothing}")
  if args.overoptimisation:
    return files.run_cli(
      "plot",
      lambda: plot_overoptimisation(args.workdir, args.output, smoothing=args.smoothing),
    )
  if len(args.workdir) > 1 or args.output:
    parser.error("one WORKDIR and no --output, unless --overoptimisation is given")
  return files.run_cli("plot", lambda: plot_reward_curve(args.workdir[0], smoothing=args.smoothing))


if __name__ == "__main__":
  sys.exit(main())
