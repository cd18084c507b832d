"""The command-line flags every run entry point shares: `--config` and `--workdir`.

Defined once here (absl flags are process-global), so `train`, `evaluate` and
`compile_check` can be imported side by side, e.g. by tests, without importing each other.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment config file, e.g. configs/quickstart.py[:runlocal]."
)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")
