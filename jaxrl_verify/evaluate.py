r"""Held-out evaluation of a run: greedy accuracy, pass@k and maj@k, from the CLI.

  python -m jaxrl_verify.evaluate --config=configs/NAME.py[:ARG] --workdir=DIR [--config.x=y]

Restores the policy of the latest checkpoint in DIR/checkpoints (or `--step`); with no
checkpoint it evaluates the config's initial model (`model.init_from`, else a fresh
init) and says so. The held-out split is `config.task.eval_split`; sampling uses
`config.eval` (`k`, `temperature`, `num_examples`, `batch_size`). Metrics are printed
as JSON and written to DIR/eval.json (or `--output`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import ml_collections as mlc
from absl import app, flags, logging

from jaxrl_verify import checkpoint as ckpt_lib
from jaxrl_verify import config_lib, distributed, evaluation, train
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import tasks as tasks_lib
from jaxrl_verify.rl import update as update_lib
from jaxrl_verify.sampler import Sampler

# `--config` and `--workdir` are defined by `train` (imported above) and shared with it.
FLAGS = flags.FLAGS
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON (default DIR/eval.json).")


def _checkpoint_target(config, policy, value, mesh) -> update_lib.TrainState:
  """Abstract arrays of the TrainState that `train` checkpoints, for `restore`.

  The optimizer states are built as `train` builds them (same optimizer, same
  init), so the stored tree and this target match leaf for leaf.
  """
  needs_ref = config_lib.needs_ref(config)
  policy_tx = train._optimizer(config, config.optim.learning_rate, config.optim.warmup_steps)
  value_opt = None
  if value is not None:
    value_tx = train._optimizer(config, config.value.learning_rate, 0)
    value_opt = distributed.init_optimizer(value_tx, value, mesh)
  state = update_lib.TrainState(
    step=jax.ShapeDtypeStruct((), jax.numpy.int32, sharding=shd.replicated(mesh)),
    policy=policy,
    policy_opt=distributed.init_optimizer(policy_tx, policy, mesh),
    ref=policy if needs_ref else None,
    value=value,
    value_opt=value_opt,
    rng=jax.ShapeDtypeStruct((2,), jax.numpy.uint32, sharding=shd.replicated(mesh)),
  )
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def load_policy(config, workdir: str, tokenizer, mesh, *, step: int | None = None):
  """The policy of checkpoint `step` (default: the latest) in WORKDIR/checkpoints.

  With no checkpoint (and `step` None) it is the config's initial model:
  `model.init_from`, else a fresh init from `config.seed`.

  Returns:
    (model cfg, graphdef, policy state, the restored step or None).

  Raises:
    FileNotFoundError: `step` was given and WORKDIR holds no such checkpoint.
  """
  cfg, graphdef, policy = train.setup_policy(config, tokenizer, mesh)
  with ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints")) as checkpointer:
    if step is None:
      step = checkpointer.latest_step()
    if step is None:
      return cfg, graphdef, policy, None
    value = None
    if config.algo.advantage == "gae":
      _, value = train.setup_value(cfg, mesh, tuple(config.sharding_rules), config.seed)
    target = _checkpoint_target(config, policy, value, mesh)
    state, _ = checkpointer.restore(step, target_pytree=target)
  return cfg, graphdef, state.policy, step


def evaluate_run(
  config: mlc.ConfigDict, workdir: str, *, step: int | None = None, output: str | None = None
) -> dict[str, Any]:
  """Evaluates the run in `workdir` on the held-out split; writes and returns the metrics.

  Args:
    config: the run's experiment config (the same file and overrides as training).
    workdir: the run directory (its tokenizer and checkpoints are used).
    step: the checkpoint step; None: the latest, or the initial model if there is none.
    output: the JSON path; default WORKDIR/eval.json.

  Returns:
    `eval/*` metrics plus `step` (None for the initial model), `source`
    (`checkpoint` or `initial model`), `split`, `task` and `time/eval`.

  Raises:
    FileNotFoundError: `step` was given but no such checkpoint exists.
    ValueError: a bad config field (one sentence naming it).
  """
  config_lib.check_workdir(workdir)
  mesh = shd.make_mesh(config.mesh_shape)
  config_lib.validate(config, mesh)
  task = tasks_lib.get_task(config.task.name, **config.task.options)
  data_dir = config.task.data_dir or os.path.join(workdir, "data")
  tokenizer = train.setup_tokenizer(config, task, data_dir, workdir)

  cfg, graphdef, policy, step = load_policy(config, workdir, tokenizer, mesh, step=step)
  source = "initial model" if step is None else "checkpoint"
  what = f"step {step} of {workdir}" if step is not None else _initial_description(config)
  logging.info("Evaluating the policy from %s.", what)

  sampler = Sampler(
    graphdef,
    cfg,
    max_prompt_len=config.task.max_prompt_len,
    max_new_tokens=config.rollout.max_new_tokens,
    eos_id=tokenizer.eos_id,
    pad_id=tokenizer.pad_id,
    mesh=mesh,
  )
  batches = train.eval_batches(task, config, tokenizer, data_dir)
  t0 = time.perf_counter()
  with train.make_pool(config) as pool:
    metrics: dict[str, Any] = evaluation.evaluate(
      sampler,
      policy,
      batches,
      tokenizer=tokenizer,
      pool=pool,
      verifier=task.verifier,
      batch_size=config.eval.batch_size // jax.process_count(),
      k=config.eval.k,
      temperature=config.eval.temperature,
      rng=jax.random.PRNGKey(config.seed + 1),
      mesh=mesh,
      num_examples=config.eval.num_examples,
    )
  metrics["time/eval"] = time.perf_counter() - t0
  metrics.update(step=step, source=source, split=config.task.eval_split, task=task.name)
  if jax.process_index() == 0:
    path = output or os.path.join(workdir, "eval.json")
    with open(path, "w") as f:
      json.dump(metrics, f, indent=2, sort_keys=True)
  return metrics


def _initial_description(config) -> str:
  if config.model.init_from:
    return f"the initial model (no checkpoint yet): {config.model.init_from}"
  return f"the initial model (no checkpoint yet): a fresh {config.model.preset!r} init"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}; pass options as --flags.")
  if FLAGS.workdir is None:
    raise app.UsageError("--workdir is required: the run directory to evaluate.")
  if FLAGS.config is None:
    raise app.UsageError("--config is required: the run's config, e.g. configs/quickstart.py.")
  distributed.initialize_from_flags()  # Before anything touches a device.
  jax.config.update("jax_threefry_partitionable", True)
  metrics = evaluate_run(FLAGS.config, FLAGS.workdir, step=_STEP.value, output=_OUTPUT.value)
  if metrics["source"] != "checkpoint":
    print(f"No checkpoint in {FLAGS.workdir}: evaluated {_initial_description(FLAGS.config)}.")
  print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
  app.run(main)
