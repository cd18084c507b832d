"""The absl entry points end on bad input with the one-sentence error as the last line
shown (exit status 1), the traceback above it in the log."""

import json
import pathlib
import re
import signal
import subprocess
import sys
import time

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


def test_ctrl_c_in_training_saves_stops_and_resumes(tmp_path):
  # A run's first Ctrl-C (or SIGTERM) saves at the next step boundary and stops cleanly.
  workdir = tmp_path / "run"
  cmd = [
    sys.executable,
    "-m",
    "jaxrl_verify.train",
    "--config=configs/quickstart.py:runlocal",
    f"--workdir={workdir}",
  ]
  proc = subprocess.Popen(
    cmd,
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    preexec_fn=_default_sigint,
  )
  seen = []
  for line in proc.stdout:  # Interrupt once the first RL step is reported.
    seen.append(line)
    if line.startswith("step 1/4"):
      proc.send_signal(signal.SIGINT)
      break
  err = "".join(seen) + proc.communicate(timeout=120)[0]
  assert proc.returncode == 0, err[-2000:]
  stopped = re.search(r"Stopping at step (\d) \(SIGINT\); resume with the same command", err)
  assert stopped and int(stopped[1]) < 4, err[-2000:]
  assert f"Stopped at step {stopped[1]} in {workdir}" in err
  again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stderr[-2000:]
  assert f"Resumed from step {stopped[1]}" in again.stderr, again.stderr[-2000:]
  steps = [json.loads(x)["step"] for x in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert steps[-1] == 4


def test_ctrl_c_outside_the_training_loop_is_one_sentence(tmp_path):
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "jaxrl_verify.compile_check",
      "--config=configs/quickstart.py",
      "--topology=v5e-8",
    ],
    cwd=REPO,
    stderr=subprocess.PIPE,
    text=True,
    preexec_fn=_default_sigint,
  )
  time.sleep(5)  # Python and JAX are up; the compile takes longer than this.
  proc.send_signal(signal.SIGINT)
  err = proc.communicate(timeout=120)[1]
  assert proc.returncode == 130, err[-2000:]
  assert err.strip().splitlines()[-1].startswith("Error: interrupted; what was complete"), err


def _default_sigint():
  # A child of a non-interactive shell may inherit SIGINT ignored (then Python installs no
  # KeyboardInterrupt handler); Ctrl-C from a terminal arrives with the default disposition.
  signal.signal(signal.SIGINT, signal.SIG_DFL)
