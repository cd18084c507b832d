"""End to end: the `:runlocal` quickstart trains, logs, checkpoints and resumes exactly.

N steps straight must equal N/2 steps + resume + N/2 steps, bit for bit on CPU
(DESIGN.md decision 7): same parameters, same optimizer state, same metrics; and so must a
run whose newest checkpoint was truncated (it resumes from the intact one before it).
"""

import json
import os
import pathlib
import shutil
import threading

import jax
import numpy as np
import pytest
from config_files import load_config

from jaxrl_verify import config_lib, train
from jaxrl_verify.data import pipeline, tasks
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer

REPO = pathlib.Path(__file__).resolve().parents[1]
DESIGN_KEYS = (
  "step",
  "reward/mean",
  "accuracy",
  "kl",
  "entropy",
  "time/sample",
  "time/verify",
  "time/update",
  "tokens_per_s",
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
  """A data dir and a tokenizer shared by every run, so runs differ only in training."""
  root = tmp_path_factory.mktemp("shared")
  config = load_config("quickstart", "runlocal")
  task = tasks.get_task(config.task.name, **config.task.options)
  tok = SentencePieceTokenizer.train(
    pipeline.texts_for_tokenizer(task, root / "data"), config.tokenizer.vocab_size, root
  )
  return root / "data", tok.path


def runlocal_config(shared, total_steps=4):
  data_dir, tok_path = shared
  config = load_config("quickstart", "runlocal")
  with config.unlocked():
    config.total_steps = total_steps
    config.task.data_dir = str(data_dir)
    config.tokenizer.path = str(tok_path)
    config.eval.k = 1
    config.eval.num_examples = 8
    config.eval.batch_size = 8
    config.checkpoint_every = 100
  return config


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _deterministic(record):
  return {k: v for k, v in record.items() if not k.startswith(("time/", "verify/", "tokens_per_s"))}


def test_runlocal_trains_logs_and_resumes_exactly(shared, tmp_path, capsys):
  config = runlocal_config(shared)
  straight, _ = train.train_and_evaluate(config, str(tmp_path / "straight"))
  # The run ends by saying what happened: the summary is the last thing printed.
  out = capsys.readouterr().out.rstrip().splitlines()
  summary = out[max(i for i, line in enumerate(out) if line.startswith("Done:")) :]
  assert summary[0].startswith(f"Done: 4 RL steps in {tmp_path / 'straight'}"), out
  assert "held-out accuracy (greedy)" in summary[1] and "at step 0 ->" in summary[1]
  assert summary[-1].strip() == f"checkpoints: {tmp_path / 'straight' / 'checkpoints'}"

  resumed_dir = str(tmp_path / "resumed")
  first, _ = train.train_and_evaluate(config, resumed_dir, stop_after=2)
  assert int(first.step) == 2
  # A copy whose newest checkpoint (step 2) is truncated: it resumes from step 0 instead.
  damaged_dir = tmp_path / "damaged"
  shutil.copytree(resumed_dir, damaged_dir)
  for path in (damaged_dir / "checkpoints" / "2").rglob("*"):
    if path.is_file():
      os.truncate(path, path.stat().st_size // 2)
  resumed, _ = train.train_and_evaluate(config, resumed_dir)
  assert int(resumed.step) == 4
  from_step_0, _ = train.train_and_evaluate(config, str(damaged_dir))
  assert (damaged_dir / "checkpoints_damaged" / "2").is_dir()

  # Bit-exact: every parameter, optimizer moment and the RNG.
  flat_a = jax.tree_util.tree_leaves_with_path(straight)
  flat_b = jax.tree_util.tree_leaves_with_path(resumed)
  assert len(flat_a) == len(flat_b)
  for (path, a), (_, b), (_, c) in zip(
    flat_a, flat_b, jax.tree_util.tree_leaves_with_path(from_step_0)
  ):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c), err_msg=jax.tree_util.keystr(path))

  records_a, records_b = _records(tmp_path / "straight"), _records(resumed_dir)
  assert [r["step"] for r in records_a] == [0, 1, 2, 3, 4]
  assert [r["step"] for r in records_b] == [0, 1, 2, 3, 4]
  assert [_deterministic(r) for r in records_a] == [_deterministic(r) for r in records_b]
  assert [_deterministic(r) for r in _records(damaged_dir)] == [
    _deterministic(r) for r in records_a
  ]
  for record in records_a[1:]:
    assert set(DESIGN_KEYS) <= set(record)
  assert "eval/accuracy" in records_a[0] and "eval/accuracy" in records_a[-1]

  workdir = tmp_path / "straight"
  assert (workdir / "reward_curve.png").stat().st_size > 0
  assert any(p.name.startswith("events.out.tfevents") for p in (workdir / "tb").iterdir())
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_invalid_config_fails_before_compiling(shared, tmp_path):
  config = runlocal_config(shared)
  with config.unlocked():
    config.rollout.group_size = 1
  with pytest.raises(ValueError, match=r"config\.rollout\.group_size"):
    train.train_and_evaluate(config, str(tmp_path / "bad"))
  assert not (tmp_path / "bad" / "checkpoints").exists()


def test_a_run_whose_updates_stay_nonfinite_stops_with_the_causes(shared, tmp_path):
  """A learning rate of 1e30 (the entropy bonus makes the gradient non-zero even with no
  reward): the first update blows the weights up, still finite, every later forward
  overflows, each update is skipped, and after two the run stops."""
  config = runlocal_config(shared, total_steps=6)
  with config.unlocked():
    config.optim.learning_rate = 1e30
    config.algo.entropy_coef = 0.1
    config.max_nonfinite_steps = 2
  with pytest.raises(RuntimeError, match=r"last 2 RL steps had non-finite gradients.*1e\+30"):
    train.train_and_evaluate(config, str(tmp_path / "nan"))
  records = _records(tmp_path / "nan")
  assert [r["step"] for r in records] == [0, 1, 2, 3]
  every = records[1]["update/optimizer_steps"]  # Skipped optimizer steps of each RL step:
  assert [r["update/skipped_nonfinite"] for r in records[1:]] == [0.0, every, every]


def test_dynamic_sampling_runs_and_reports_rounds(shared, tmp_path):
  config = runlocal_config(shared, total_steps=1)
  with config.unlocked():
    config.algo.dynamic_sampling = True
    config.algo.max_resample_rounds = 2
  _, metrics = train.train_and_evaluate(config, str(tmp_path / "dyn"))
  assert 1 <= metrics["dynamic/rounds"] <= 2
  assert 0.0 <= metrics["dynamic/kept_frac"] <= 1.0
  record = _records(tmp_path / "dyn")[-1]
  assert record["step"] == 1 and "dynamic/topped_up_groups" in record


def test_object_store_workdir_is_refused_with_the_fix():
  with pytest.raises(ValueError, match="gcsfuse"):
    config_lib.check_workdir("gs://bucket/run")


def test_workdir_check_is_safe_when_every_process_runs_it_at_once(tmp_path):
  """Multi-host runs check one shared workdir from every process at the same moment."""
  workdir = str(tmp_path / "shared")
  errors = []

  def check_many():
    for _ in range(200):
      try:
        config_lib.check_workdir(workdir)
      except ValueError as e:
        errors.append(e)

  threads = [threading.Thread(target=check_many) for _ in range(8)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors, errors[0]
  assert os.listdir(workdir) == []  # No probe is left behind.


def test_unwritable_workdir_is_refused_with_the_fix(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(ValueError, match="cannot be written.*pick a writable directory"):
    config_lib.check_workdir(str(blocker / "run"))
