"""What a run shows a person: the closing summary, and other libraries' INFO logs hidden."""

import logging as std_logging
import os

import pytest
from absl import flags
from absl import logging as absl_logging

from jaxrl_verify import logs
from jaxrl_verify.metrics import MetricsWriter


def test_summary_reports_before_and_after_and_where_outputs_are(tmp_path):
  with MetricsWriter(tmp_path, console=False) as writer:
    writer.write(0, {"eval/accuracy": 0.25, "eval/pass@4": 0.5})
    writer.write(1, {"reward/mean": 0.4})
    writer.write(2, {"reward/mean": 0.6, "eval/accuracy": 0.75, "eval/pass@4": 0.875})
  (tmp_path / "checkpoints").mkdir()
  lines = logs.run_summary(str(tmp_path), wall_s=12.3).splitlines()
  assert lines[0] == f"Done: 2 RL steps in {tmp_path} (12 s this run)."
  assert lines[1] == (
    "  held-out accuracy (greedy): 0.250 at step 0 -> 0.750 at step 2 (+50.0 points)"
  )
  assert lines[2] == "  held-out pass@4: 0.500 at step 0 -> 0.875 at step 2 (+37.5 points)"
  assert f"metrics:     {tmp_path / 'metrics.jsonl'}" in lines[3]
  assert any(line.strip() == f"checkpoints: {tmp_path / 'checkpoints'}" for line in lines)
  assert not any("plot:" in line for line in lines)  # No plot written: none listed.


def _record(pathname: str, level: int) -> std_logging.LogRecord:
  return std_logging.LogRecord("absl", level, pathname, 1, "message", None, None)


@pytest.fixture
def handler():
  handler = absl_logging.get_absl_handler()
  saved = list(handler.filters)
  yield handler
  handler.filters[:] = saved


def test_library_info_is_dropped_unless_verbosity_is_given(handler, monkeypatch):
  own = os.path.join(os.path.dirname(logs.__file__), "train.py")
  orbax = "/site-packages/orbax/checkpoint/checkpoint_manager.py"
  monkeypatch.setattr(flags.FLAGS["verbosity"], "present", 0)
  logs.quiet_libraries()
  logs.quiet_libraries()  # Idempotent: one filter.
  passes = lambda r: all(f.filter(r) for f in handler.filters)  # noqa: E731
  assert sum(isinstance(f, logs._OwnInfoOnly) for f in handler.filters) == 1
  assert passes(_record(own, std_logging.INFO))
  assert not passes(_record(orbax, std_logging.INFO))
  assert passes(_record(orbax, std_logging.WARNING))

  handler.filters[:] = [f for f in handler.filters if not isinstance(f, logs._OwnInfoOnly)]
  monkeypatch.setattr(flags.FLAGS["verbosity"], "present", 1)  # --verbosity on the command line
  logs.quiet_libraries()
  assert passes(_record(orbax, std_logging.INFO))
