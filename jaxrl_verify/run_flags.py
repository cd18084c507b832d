"""The command-line flags every run entry point shares (`--config`, `--workdir`), and
`run`, which starts one and ends it with a one-sentence error rather than a traceback.

Defined once here (absl flags are process-global), so `train`, `evaluate` and
`compile_check` can be imported side by side, e.g. by tests, without importing each other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags, logging
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment config file, e.g. configs/quickstart.py[:runlocal]."
)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")


# What a run raises for bad input or a bad environment (config, files, checkpoints, disk):
# each carries one sentence naming the problem and the fix.
USER_ERRORS = (ValueError, OSError, RuntimeError)


def run(main: Callable[[list[str]], object]) -> None:
  """`absl.app.run(main)`, except that a `USER_ERRORS` exception ends the process with its
  one-sentence message as the last line shown (exit status 1), after the traceback has
  gone to the log for whoever debugs it."""

  def guarded(argv: list[str]) -> object:
    try:
      return main(argv)
    except USER_ERRORS as e:
      logging.error("The run stopped on this exception:", exc_info=True)
      print(f"\nError: {e}", file=sys.stderr, flush=True)
      sys.exit(1)

  app.run(guarded)
