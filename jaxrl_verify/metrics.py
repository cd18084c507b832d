"""Per-step metrics to three sinks: ``metrics.jsonl``, TensorBoard events, a console line.

The writer is synchronous and takes host scalars: the loop passes the previous step's
metrics (already on the host) so logging never blocks on the device.

JSON encoding: every value is written as a Python float (``step`` as an int). Non-finite
values, which strict JSON cannot hold, are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, so a diverging run stays visible (``null`` would hide inf vs NaN) and the file
stays valid JSON for any reader; ``read_metrics`` turns them back into floats.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np
from absl import logging

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"
HEADLINE_KEYS = ("reward/mean", "accuracy", "kl", "eval/accuracy")
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _to_float(key: str, value: Any) -> float:
  if isinstance(value, str):
    raise ValueError(f"Metric '{key}' is the string {value!r}; log numbers only.")
  arr = np.asarray(value)
  # A kind check, not np.number: ml_dtypes bfloat16 is kind "V" and not an np.number.
  error = ValueError(
    f"Metric '{key}' has shape {arr.shape} and dtype {arr.dtype}; log one number per key "
    "(reduce arrays, e.g. with .mean(), before writing)."
  )
  if arr.size != 1 or arr.dtype.kind in "OSUMm":
    raise error
  try:
    return float(arr.reshape(()))
  except (TypeError, ValueError):
    raise error from None


def _encode(value: float) -> float | str:
  if math.isfinite(value):
    return value
  return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _decode(value: Any) -> Any:
  return _NONFINITE.get(value, value) if isinstance(value, str) else value


def _format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class MetricsWriter:
  """Appends one record per ``write`` to JSONL and TensorBoard, and prints a progress line.

  On processes other than the main one every method is a no-op and no file is created.

  Attributes:
    workdir: the run directory; holds ``metrics.jsonl`` and ``tb/``.
  """

  def __init__(
    self,
    workdir: str | os.PathLike,
    *,
    is_main_process: bool = True,
    total_steps: int | None = None,
    console: bool = True,
    resume_step: int | None = None,
    headline_keys: Sequence[str] = HEADLINE_KEYS,
    stream: TextIO | None = None,
  ):
    """Opens the sinks.

    Args:
      workdir: run directory (created if missing).
      is_main_process: pass ``jax.process_index() == 0``; False makes the writer inert.
      total_steps: the run's last step, for the progress fraction and ETA.
      console: print a progress line per write.
      resume_step: when resuming from a checkpoint at this step, records with a larger step
        (written after that checkpoint by the interrupted run) are dropped from
        ``metrics.jsonl`` and purged in TensorBoard, so the logs equal an uninterrupted run.
      headline_keys: metrics shown on the console line when present.
      stream: console stream; default ``sys.stdout``. On a TTY the line is redrawn in place,
        otherwise one line is printed per write.
    """
    self.workdir = os.fspath(workdir)
    self._active = is_main_process
    self._total_steps = total_steps
    self._console = console
    self._headline_keys = tuple(headline_keys)
    self._stream = stream if stream is not None else sys.stdout
    self._last_step: int | None = None
    self._last_time: float | None = None
    self._sec_per_step: float | None = None
    self._line_open = False
    if not self._active:
      return
    os.makedirs(self.workdir, exist_ok=True)
    path = os.path.join(self.workdir, METRICS_FILE)
    if resume_step is not None and os.path.exists(path):
      _truncate_after(path, resume_step)
    self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
    # Imported lazily: non-main processes should not pay for it.
    from tensorboardX import SummaryWriter

    purge_step = None if resume_step is None else resume_step + 1
    self._tb = SummaryWriter(logdir=os.path.join(self.workdir, TB_DIR), purge_step=purge_step)

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    """Records ``metrics`` (name -> scalar; numpy/jax scalars accepted) for ``step``.

    Raises:
      ValueError: a value is not a single number, or a key is ``step``.
    """
    if not self._active:
      return
    if "step" in metrics:
      raise ValueError("Metric key 'step' is reserved; pass the step as the first argument.")
    values = {key: _to_float(key, value) for key, value in metrics.items()}
    record = {"step": int(step), **{k: _encode(v) for k, v in values.items()}}
    self._file.write(json.dumps(record, allow_nan=False) + "\n")
    self._file.flush()
    for key, value in values.items():
      self._tb.add_scalar(key, value, global_step=int(step))
    self._tb.flush()
    if self._console:
      self._print_progress(int(step), values)

  def _print_progress(self, step: int, values: Mapping[str, float]) -> None:
    now = time.monotonic()
    if self._last_step is not None and step > self._last_step:
      sec_per_step = (now - self._last_time) / (step - self._last_step)
      # An exponential moving average: robust to one slow step (eval, checkpoint, compile).
      self._sec_per_step = (
        sec_per_step
        if self._sec_per_step is None
        else 0.9 * self._sec_per_step + 0.1 * sec_per_step
      )
    self._last_step, self._last_time = step, now
    parts = [f"step {step}" + (f"/{self._total_steps}" if self._total_steps else "")]
    if self._sec_per_step is not None:
      parts.append(f"{self._sec_per_step:.2f} s/step")
      if self._total_steps:
        remaining = max(self._total_steps - step, 0) * self._sec_per_step
        parts.append(f"ETA {_format_duration(remaining)}")
    parts += [f"{k} {values[k]:.4g}" for k in self._headline_keys if k in values]
    line = " | ".join(parts)
    if self._stream.isatty():
      self._stream.write("\r" + line + "\x1b[K")
      self._line_open = True
    else:
      self._stream.write(line + "\n")
    self._stream.flush()

  def close(self) -> None:
    """Flushes and closes the files; ends an in-place console line."""
    if not self._active:
      return
    if self._line_open:
      self._stream.write("\n")
      self._stream.flush()
      self._line_open = False
    self._file.close()
    self._tb.close()
    self._active = False

  def __enter__(self) -> MetricsWriter:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()


def _truncate_after(path: str, resume_step: int) -> None:
  kept = [r for r in _read_records(path) if r["step"] <= resume_step]
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for record in kept:
      record = {k: _encode(v) if isinstance(v, float) else v for k, v in record.items()}
      f.write(json.dumps(record, allow_nan=False) + "\n")
  os.replace(tmp, path)


def _read_records(path: str) -> list[dict[str, Any]]:
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  records = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      if i == len(lines) - 1:
        # A process killed mid-write leaves a partial last line; the rest is still good.
        logging.warning("Ignoring a truncated last line in %s.", path)
        continue
      raise ValueError(f"{path}:{i + 1} is not valid JSON ({e.msg}); fix or remove it.") from e
    records.append({k: _decode(v) for k, v in record.items()})
  return records


def read_metrics(workdir: str | os.PathLike) -> list[dict[str, Any]]:
  """All records of ``workdir/metrics.jsonl`` in file order (non-finite strings -> floats).

  Raises:
    FileNotFoundError: there is no metrics file in ``workdir``.
  """
  path = os.path.join(os.fspath(workdir), METRICS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"No {METRICS_FILE} in {workdir}; pass the --workdir of a run that has logged a step."
    )
  return _read_records(path)
