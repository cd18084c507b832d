"""The one rule for when periodic things (log, eval, checkpoint, profile) happen."""

from __future__ import annotations


def every(
  step: int,
  period: int | None,
  *,
  total_steps: int | None = None,
  first: bool = False,
  last: bool = True,
) -> bool:
  """Whether a periodic action runs after training step ``step``.

  Steps count completed updates starting at 1, so ``every(step, 100)`` fires after updates
  100, 200, ... . A ``period`` of None or 0 disables the action completely (no first/last
  either), so a config can switch it off with one knob.

  Args:
    step: the number of the step that just finished (1-based).
    period: fire on multiples of this; None or 0 disables.
    total_steps: the run's last step; used by ``last``.
    first: also fire on step 1 (e.g. an eval of the initial policy's first update, or to
      catch a crashing checkpoint/eval path early).
    last: also fire on ``step == total_steps`` (e.g. a final checkpoint and eval).

  Returns:
    True if the action should run now.

  Raises:
    ValueError: ``period`` is negative.
  """
  if period is None or period == 0:
    return False
  if period < 0:
    raise ValueError(f"A periodic interval must be >= 0 or None, got {period}; use 0 to disable.")
  if step % period == 0:
    return True
  if first and step == 1:
    return True
  return bool(last and total_steps is not None and step == total_steps)
