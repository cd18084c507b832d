"""The reward-model trainer: `configs/prm_stepwise.py:runlocal` trains, logs and resumes exactly."""

import importlib.util
import json
import pathlib

import jax
import numpy as np
import pytest

from jaxrl_verify.process import rm_config, rm_trainer

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config(arg=None):
  spec = importlib.util.spec_from_file_location(
    "prm_stepwise", REPO / "configs" / "prm_stepwise.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_runlocal_trains_logs_and_resumes_exactly(tmp_path):
  config = load_config("runlocal")
  straight, _ = rm_trainer.train_rm(config, str(tmp_path / "straight"))
  first, _ = rm_trainer.train_rm(config, str(tmp_path / "resumed"), stop_after=2)
  assert int(first.step) == 2
  resumed, last = rm_trainer.train_rm(config, str(tmp_path / "resumed"))
  assert int(resumed.step) == 6
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  records = [
    json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
  ]
  assert [r["step"] for r in records] == [0, 1, 2, 3, 4, 5, 6]
  assert {"loss", "step_accuracy", "grad_norm"} <= set(records[1])
  assert "eval/loss" in records[0] and "eval/loss" in records[3] and "eval/loss" in records[6]
  assert records[6]["loss"] < records[1]["loss"]  # It learns the stand-in's labels.
  assert any((tmp_path / "straight" / "tb").iterdir())
  assert last["eval/loss"] == records[6]["eval/loss"]


def test_orm_and_bad_config(tmp_path):
  config = load_config("runlocal")
  with config.unlocked():
    config.rm.kind = "orm"
    config.total_steps = 1
  _, metrics = rm_trainer.train_rm(config, str(tmp_path / "orm"))
  assert 0.0 <= metrics["eval/step_accuracy"] <= 1.0
  bad = rm_config.base_config()
  with pytest.raises(ValueError, match="config.rm.kind is 'prm2'"):
    bad.rm.kind = "prm2"
    rm_config.validate(bad, 1)
  bad = rm_config.base_config()
  with pytest.raises(ValueError, match="config.data.manual_dir is empty"):
    rm_config.validate(bad, 1)
  bad.data.manual_dir = "/x"
  bad.optim.batch_size = 3
  with pytest.raises(ValueError, match=r"config.optim.batch_size \(3\) is not divisible"):
    rm_config.validate(bad, 2)
  with pytest.raises(ValueError, match="Unknown config argument"):
    load_config("bogus")


def test_score_steps_cli_restores_the_trained_rm(tmp_path, capsys):
  from jaxrl_verify.process import rm, rm_setup, score_steps
  from jaxrl_verify.process import stepwise_data as sd

  config = load_config("runlocal")
  workdir = tmp_path / "rm"
  state, _ = rm_trainer.train_rm(config, str(workdir))
  sols = list(sd.read_file(rm_trainer.STANDIN, "math_shepherd"))[:5]
  src = tmp_path / "in.jsonl"
  src.write_text(
    "".join(
      json.dumps({"prompt": s.prompt, "steps": list(s.steps), "id": i}) + "\n"
      for i, s in enumerate(sols)
    )
  )
  out = tmp_path / "out.jsonl"
  argv = [
    "--checkpoint",
    str(workdir),
    "--input",
    str(src),
    "--output",
    str(out),
    "--batch-size",
    "4",
  ]
  assert score_steps.main([*argv, "--aggregate", "product"]) == 0
  rows = [json.loads(x) for x in out.read_text().splitlines()]
  assert [r["id"] for r in rows] == list(range(5))
  # The restored parameters are the trained ones, and the scores are theirs.
  _, tok, graphdef, params = rm_setup.restore(str(workdir))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  fmt = rm_trainer.steps_lib.step_format("lines")
  batch = rm.pack(
    tok, [s.prompt for s in sols], [s.steps for s in sols], None, fmt, max_len=160, max_steps=4
  )
  probs = np.asarray(jax.jit(rm.make_score_fn(graphdef))(params, batch))
  for i, r in enumerate(rows):
    np.testing.assert_allclose(r["step_scores"], probs[i, : len(sols[i].steps)], rtol=1e-5)
    assert r["score"] == pytest.approx(float(np.prod(r["step_scores"])), rel=1e-6)
  # Bad input: one sentence, nothing written.
  src.write_text('{"prompt": "Q", "steps": []}\n')
  bad_out = tmp_path / "bad.jsonl"
  assert (
    score_steps.main(["--checkpoint", str(workdir), "--input", str(src), "--output", str(bad_out)])
    == 2
  )
  assert 'needs "steps": a non-empty list' in capsys.readouterr().err and not bad_out.exists()
  src.write_text('{"prompt": "Q", "steps": ["a"]}\n')
  assert (
    score_steps.main(["--checkpoint", str(tmp_path), "--input", str(src), "--output", str(bad_out)])
    == 2
  )
  assert "No reward-model checkpoint" in capsys.readouterr().err


def test_token_head_trains_restores_and_refuses_bad_tokens(tmp_path):
  """Math-Shepherd's +/- head through the trainer: it learns, its checkpoint restores as a
  token head (the same parameters, the same scores), and label strings that are not one
  token or a bad head name get one clear error."""
  from jaxrl_verify.process import rm, rm_setup

  config = load_config("runlocal")
  with config.unlocked():
    config.rm.head = "token"
  state, last = rm_trainer.train_rm(config, str(tmp_path / "tok"))
  records = [json.loads(x) for x in (tmp_path / "tok" / "metrics.jsonl").read_text().splitlines()]
  assert records[-1]["loss"] < records[1]["loss"]
  _, tok, graphdef, params = rm_setup.restore(str(tmp_path / "tok"))
  assert isinstance(rm_setup.nnx.merge(graphdef, params), rm.TokenHeadRM)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with config.unlocked():
    config.rm.good_token = "good"
  with pytest.raises(ValueError, match="config.rm.good_token 'good' is .* tokens"):
    rm_trainer.train_rm(config, str(tmp_path / "bad"))
  bad = rm_config.base_config()
  bad.rm.head = "linear"
  with pytest.raises(ValueError, match="config.rm.head is 'linear'"):
    rm_config.validate(bad, 1)
