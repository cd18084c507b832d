r"""Train a process (PRM) or outcome (ORM) reward model on step-labelled solutions.

  python -m jaxrl_verify.process.train_rm --config=configs/prm_stepwise.py[:runlocal] \
      --workdir=DIR [--config.key=value]

The entry point of `rm_trainer.train_rm` (which says what it builds and writes): rerunning
the same command resumes, bit for bit.
"""

from __future__ import annotations

import jax
from absl import app

from jaxrl_verify import distributed, logs, run_flags
from jaxrl_verify.process import rm_trainer


def main(argv):
  del argv
  if run_flags.WORKDIR.value is None or run_flags.CONFIG.value is None:
    raise app.UsageError(
      "--config and --workdir are required, e.g. --config=configs/prm_stepwise.py."
    )
  logs.quiet_libraries()
  distributed.initialize_from_flags()
  jax.config.update("jax_threefry_partitionable", True)
  rm_trainer.train_rm(run_flags.CONFIG.value, run_flags.WORKDIR.value)


if __name__ == "__main__":
  run_flags.run(main)
