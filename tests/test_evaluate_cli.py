"""`python -m jaxrl_verify.evaluate`: restores a run's policy and evaluates it held-out.

One tiny PPO run (policy, reference and critic all in its checkpoint: the hardest tree
to restore) is shared by the tests. The restored policy is compared leaf by leaf with
the checkpoint as orbax stores it, read without any target tree.
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxrl_verify import evaluate, setup_lib, train
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import tasks
from jaxrl_verify.models import io as model_io

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "ppo_gae_arith"
OVERRIDES = {
  "total_steps": 1,
  "sft.steps": 0,
  "value.warmup_steps": 0,  # So the policy moves in its one step.
  "rollout.max_new_tokens": 8,
  "eval.k": 2,
  "eval.num_examples": 8,
  "eval.batch_size": 8,
  "checkpoint_every": 100,
}


def load_config():
  spec = importlib.util.spec_from_file_location(CONFIG, REPO / "configs" / f"{CONFIG}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("runlocal")
  with config.unlocked():
    for field, value in OVERRIDES.items():
      *path, key = field.split(".")
      node = config
      for p in path:
        node = node[p]
      node[key] = value
  return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  config = load_config()
  train.train_and_evaluate(config, str(workdir))
  return config, workdir


def test_restores_the_latest_checkpoint_policy_exactly(run):
  config, workdir = run
  mesh = shd.make_mesh(config.mesh_shape)
  task = tasks.get_task(config.task.name, **config.task.options)
  tok = setup_lib.tokenizer_for(config, task, str(workdir / "data"), str(workdir))
  _, _, policy, step = evaluate.load_policy(config, str(workdir), tok, mesh)
  assert step == 1
  stored = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / "1" / "state")
  got = model_io.pure_params(policy)
  want = stored["policy"]
  paths = jax.tree_util.tree_leaves_with_path(got)
  assert len(paths) == len(jax.tree.leaves(want)) > 0
  for path, leaf in paths:
    ref = want
    for key in path:
      ref = ref[str(getattr(key, "key", getattr(key, "idx", key)))]
    ref = ref["value"] if isinstance(ref, dict) else ref  # nnx.Variable's one field.
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(ref), jax.tree_util.keystr(path))
  # The checkpointed policy moved away from step 0's (the update did something).
  step0 = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / "0" / "state")
  moved = [
    not np.array_equal(a, b)
    for a, b in zip(jax.tree.leaves(step0["policy"]), jax.tree.leaves(want))
  ]
  assert any(moved)

  with pytest.raises(FileNotFoundError, match="step 7"):
    evaluate.load_policy(config, str(workdir), tok, mesh, step=7)


def test_evaluate_run_matches_the_trainers_final_greedy_eval(run):
  config, workdir = run
  metrics = evaluate.evaluate_run(config, str(workdir))
  assert metrics["source"] == "checkpoint" and metrics["step"] == 1
  with open(workdir / "eval.json") as f:
    assert json.load(f) == metrics
  assert metrics["eval/num_examples"] == 8
  assert 0 <= metrics["eval/pass@2"] <= 1 and 0 <= metrics["eval/maj@2"] <= metrics["eval/pass@2"]
  # Greedy decoding is deterministic: the trainer's eval after its last step saw the
  # same policy on the same problems.
  with open(workdir / "metrics.jsonl") as f:
    last = [json.loads(line) for line in f][-1]
  assert last["step"] == 1
  for key in ("eval/accuracy", "eval/invalid_frac", "eval/response_length"):
    assert metrics[key] == pytest.approx(last[key]), key


def test_cli_without_checkpoint_evaluates_the_initial_model(run, tmp_path):
  _, workdir = run
  fresh = tmp_path / "fresh"
  fresh.mkdir()
  # Same data and tokenizer, no checkpoints: the config's initial model is evaluated.
  shutil.copytree(workdir / "data", fresh / "data")
  shutil.copy(workdir / "tokenizer.model", fresh / "tokenizer.model")
  flags = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxrl_verify.evaluate",
      f"--config=configs/{CONFIG}.py:runlocal",
      f"--workdir={fresh}",
      *flags,
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    env=dict(os.environ),
  )
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.strip().splitlines()
  assert "No checkpoint" in lines[0] and "initial model" in lines[0]
  metrics = json.loads(lines[-1])
  assert metrics["source"] == "initial model" and metrics["step"] is None
  assert json.loads((fresh / "eval.json").read_text()) == metrics
  assert not (fresh / "checkpoints").exists() or not any((fresh / "checkpoints").iterdir())
