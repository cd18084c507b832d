"""The absl entry points end on bad input with the one-sentence error as the last line
shown (exit status 1), the traceback above it in the log."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
  ("module", "args", "says"),
  [
    (
      "jaxrl_verify.train",
      ["--config=configs/quickstart.py:runlocal", "--config.rollout.group_size=1"],
      "config.rollout.group_size",
    ),
    (
      "jaxrl_verify.compile_check",
      ["--config=configs/quickstart.py", "--topology=nope"],
      "--topology='nope' is not an accelerator type",
    ),
    (
      "jaxrl_verify.process.train_rm",
      ["--config=configs/prm_stepwise.py:runlocal", "--config.rm.head=nope"],
      "config.rm.head",
    ),
  ],
)
def test_bad_config_ends_with_one_sentence(tmp_path, module, args, says):
  out = subprocess.run(
    [sys.executable, "-m", module, f"--workdir={tmp_path / 'run'}", *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 1, out.stderr[-2000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("Error: ") and says in last, out.stderr[-2000:]
  assert "Traceback" in out.stderr  # Kept for debugging, above the message.
