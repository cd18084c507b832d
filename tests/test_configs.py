"""Every experiment config loads, validates, and (at `:runlocal`) runs an RL step end to end.

The real-scale configs are checked against their intended TPU slice without one: an
`AbstractMesh` of the config's mesh shape validates the batch sizes, and the preset's
abstract parameters (no memory) must shard evenly over it. Invalid configs must fail in
`config_lib.validate` (or the workdir check), before any data, model or compilation.
"""

import importlib.util
import json
import math
import pathlib
import re
import tempfile

import jax
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, AxisType

from jaxrl_verify import config_lib, train
from jaxrl_verify import sharding as shd
from jaxrl_verify.models import config as model_config
from jaxrl_verify.models.transformer import Transformer

REPO = pathlib.Path(__file__).resolve().parents[1]
# RL experiments (run by `jaxrl_verify.train`); process-supervision configs are tested with
# their entry points (tests/test_train_rm.py, tests/test_process_pipeline.py).
CONFIGS = sorted(
  p.stem
  for p in (REPO / "configs").glob("*.py")
  if not p.stem.startswith("_") and "python -m jaxrl_verify.process." not in p.read_text()
)
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


def load_config(name: str, arg: str | None = None):
  spec = importlib.util.spec_from_file_location(f"configs.{name}", REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def intended_mesh(config) -> AbstractMesh:
  """The config's mesh with -1 read as 1: the smallest slice the config is written for."""
  shape = tuple(1 if s == -1 else s for s in config.mesh_shape)
  return AbstractMesh(shape, shd.MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def test_every_experiment_is_tested():
  assert {"quickstart", "ppo_gae_arith", "grpo_countdown"} <= set(CONFIGS)
  assert {"grpo_gsm8k_qwen2p5_1p5b", "ppo_math_qwen2p5_7b_v5p"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_default_config_validates_on_its_slice(name):
  config = load_config(name)
  assert config.is_locked
  mesh = intended_mesh(config)
  config_lib.validate(config, mesh)
  if config.model.init_from:
    return
  # Every parameter of the real model shards evenly over the intended mesh (raises if not).
  cfg = model_config.get_preset(config.model.preset, **dict(config.model.overrides))
  abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  shardings = shd.state_shardings(nnx.split(abstract)[1], mesh, tuple(config.sharding_rules))
  specs = {s.spec for s in jax.tree.leaves(shardings)}
  if math.prod(mesh.shape.values()) > 1:
    assert any(spec != jax.sharding.PartitionSpec() for spec in specs)


@pytest.mark.parametrize("name", CONFIGS)
def test_runlocal_config_validates_and_rejects_unknown_args(name):
  config = load_config(name, "runlocal")
  config_lib.validate(config, shd.make_mesh(config.mesh_shape))
  assert config.total_steps < load_config(name).total_steps
  assert not config.model.init_from, "runlocal must not need downloaded weights"
  with pytest.raises(ValueError, match="runlocal"):
    load_config(name, "bogus")


@pytest.mark.parametrize("name", CONFIGS)
def test_loading_a_config_writes_nothing(name, tmp_path, monkeypatch):
  """Configs are data: loading one (either variant) creates no file, not even a temp one."""
  scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
  scratch.mkdir()
  cwd.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  monkeypatch.chdir(cwd)
  load_config(name)
  load_config(name, "runlocal")
  assert not any(scratch.iterdir()) and not any(cwd.iterdir())


def _tiny_run_config(name: str):
  """The `:runlocal` config cut to one RL step and a one-sample eval of 8 problems."""
  config = load_config(name, "runlocal")
  with config.unlocked():
    config.total_steps = 1
    config.sft.steps = 0
    config.rollout.max_new_tokens = 8
    config.eval.k = 1
    config.eval.num_examples = 8
    config.eval.batch_size = 8
    config.checkpoint_every = 100
    # bf16 is emulated on CPU and remat doubles the backward graph: both multiply compile
    # time here. The real-scale configs keep them at `:runlocal` (the CLI runs them).
    config.model.dtype = "float32"
    config.model.remat = "none"
  return config


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "quickstart"])
def test_runlocal_runs_an_rl_step(name, tmp_path):
  config = _tiny_run_config(name)
  train.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records] == [0, 1]
  assert set(DESIGN_KEYS) <= set(records[1])
  assert all(math.isfinite(records[1][k]) for k in DESIGN_KEYS)
  assert "eval/accuracy" in records[0] and "eval/accuracy" in records[1]
  assert (tmp_path / "checkpoints" / "1").is_dir()
  if config.task.options.get("standin"):  # The public files' stand-in, made by the run.
    assert any((tmp_path / "data" / "manual").glob("*/train.jsonl"))


def _set(config, field: str, value):
  section, key = field.split(".")
  with config.unlocked():
    config[section][key] = value


@pytest.mark.parametrize(
  "field,value",
  [
    ("rollout.group_size", 1),  # GRPO compares samples within a group.
    ("rollout.prompts_per_step", 4),  # 4 prompts do not split over 8 data devices.
    ("algo.advantage", "ppo_magic"),
    ("algo.kl_estimator", "k9"),
  ],
)
def test_invalid_config_fails_before_any_work(field, value, tmp_path):
  config = _tiny_run_config("grpo_countdown")
  _set(config, field, value)
  with pytest.raises(ValueError, match=re.escape(f"config.{field} ")):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  # Validation ran before the data, the tokenizer, the model and any compilation.
  assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


def test_unwritable_workdir_fails_naming_it(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(ValueError, match=r"--workdir .*a_file/run.* cannot be written"):
    train.train_and_evaluate(_tiny_run_config("grpo_countdown"), str(blocker / "run"))
