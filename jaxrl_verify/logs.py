"""What a run shows a person: quiet library logs by default, and a summary at the end.

Orbax, tfds and absl log many INFO lines (checkpoint bookkeeping, dataset preparation)
through absl's handler, and tfds draws progress bars. By default the entry points keep
INFO records of this package, drop other packages' INFO records (their warnings and
errors still show) and turn the progress bars off; passing `--verbosity` (or `-v`)
explicitly restores absl's plain behaviour for every library.
"""

from __future__ import annotations

import logging as std_logging
import math
import os

from absl import flags, logging

from jaxrl_verify import metrics as metrics_lib

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class _OwnInfoOnly(std_logging.Filter):
  """Passes WARNING and above from anyone, and lower levels from this package only."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or record.pathname.startswith(_PACKAGE_DIR)


def quiet_libraries() -> None:
  """Drops other libraries' INFO logs unless `--verbosity`/`-v` was given on the command line.

  Call it in an entry point's `main`, after flags are parsed.
  """
  if flags.FLAGS["verbosity"].present:
    return
  import tensorflow_datasets as tfds  # Its progress bars while preparing data, too.

  tfds.display_progress_bar(False)
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _OwnInfoOnly) for f in handler.filters):
    handler.addFilter(_OwnInfoOnly())


def run_summary(workdir: str, *, wall_s: float, stopped_at: int | None = None) -> str:
  """A few lines saying what a run did, read back from its `metrics.jsonl`.

  Held-out accuracy (greedy) and pass@k before RL (the first eval) and after (the last),
  the steps run, the wall time of this invocation and where every output lives.
  `stopped_at`: the step a signal or `stop_after` stopped the run at, before its end.
  """
  records = metrics_lib.read_metrics(workdir)
  evals = [r for r in records if "eval/accuracy" in r]
  steps = max((r["step"] for r in records), default=0)
  if stopped_at is None:
    lines = [f"Done: {steps} RL steps in {workdir} ({wall_s:.0f} s this run)."]
  else:
    lines = [
      f"Stopped at step {stopped_at} in {workdir} ({wall_s:.0f} s this run); "
      "rerun the same command to resume."
    ]
  if evals:
    first, last = evals[0], evals[-1]
    lines.append(_change("held-out accuracy (greedy)", "eval/accuracy", first, last))
    pass_key = next((k for k in sorted(last) if k.startswith("eval/pass@")), None)
    if pass_key:
      lines.append(_change(f"held-out {pass_key[len('eval/') :]}", pass_key, first, last))
  files = [
    ("metrics", os.path.join(workdir, metrics_lib.METRICS_FILE)),
    ("TensorBoard", os.path.join(workdir, metrics_lib.TB_DIR)),
    ("plot", os.path.join(workdir, "reward_curve.png")),
    ("checkpoints", os.path.join(workdir, "checkpoints")),
  ]
  lines += [f"  {name + ':':13s}{path}" for name, path in files if os.path.exists(path)]
  return "\n".join(lines)


def _change(label: str, key: str, first: dict, last: dict) -> str:
  before, after = first.get(key, math.nan), last.get(key, math.nan)
  if first is last:
    return f"  {label}: {after:.3f} at step {last['step']}"
  return (
    f"  {label}: {before:.3f} at step {first['step']} -> {after:.3f} at step {last['step']} "
    f"({100 * (after - before):+.1f} points)"
  )
