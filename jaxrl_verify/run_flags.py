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

from jaxrl_verify import files

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
  gone to the log for whoever debugs it; Ctrl-C ends it with a sentence too (status 130).

  A run's outputs are checkpoints and files written atomically, so an interrupted run
  resumes from its newest intact checkpoint when started again with the same command.
  """

  def guarded(argv: list[str]) -> object:
    try:
      return main(argv)
    except KeyboardInterrupt:
      print(
        "\nError: interrupted; what was complete is kept in --workdir (checkpoints and "
        "files are written whole), rerun the same command to go on.",
        file=sys.stderr,
        flush=True,
      )
      sys.exit(files.EXIT_INTERRUPTED)
    except USER_ERRORS as e:
      logging.error("The run stopped on this exception:", exc_info=True)
      message = files.out_of_memory_message(e) if "RESOURCE_EXHAUSTED" in str(e) else e
      print(f"\nError: {message}", file=sys.stderr, flush=True)
      sys.exit(1)

  app.run(guarded)
