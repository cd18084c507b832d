r"""Held-out evaluation of a run: greedy accuracy, pass@k and maj@k, from the CLI.

  python -m jaxrl_verify.evaluate --config=configs/NAME.py[:ARG] --workdir=DIR [--config.x=y]

Restores the policy of the latest checkpoint in DIR/checkpoints (or `--step`); with no
checkpoint it evaluates the config's initial model (`model.init_from`, else a fresh
init) and says so. The held-out split is `config.task.eval_split`; sampling uses
`config.eval` (`k`, `temperature`, `num_examples`, `batch_size`). Metrics are printed
as JSON and written to DIR/eval.json (or `--output`), with the task's baselines scored by
the same verifier where it has them (`baseline/NAME/...`, e.g. the simulator tasks'
constant-state and fitted-linear predictors).
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
from jaxrl_verify import distributed, logs, run_flags, setup_lib

_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON (default DIR/eval.json).")


def load_policy(config, workdir: str, tokenizer, mesh, *, step: int | None = None):
  """The policy of checkpoint `step` (default: the latest) in WORKDIR/checkpoints.

  With no checkpoint (and `step` None) it is the config's initial model:
  `model.init_from`, else a fresh init from `config.seed`.

  Returns:
    (model cfg, graphdef, policy state, the restored step or None).

  Raises:
    FileNotFoundError: `step` was given and WORKDIR holds no such checkpoint.
  """
  cfg, graphdef, policy = setup_lib.policy(config, tokenizer, mesh)
  with ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints")) as checkpointer:
    if checkpointer.latest_step() is None:
      if step is not None:
        raise FileNotFoundError(
          f"No checkpoints in {workdir}/checkpoints, so no step {step} to evaluate; pass the "
          "--workdir of a training run."
        )
      return cfg, graphdef, policy, None
    value = setup_lib.value(config, cfg, mesh, abstract=True)
    value_state = None if value is None else value[1]
    txs = setup_lib.optimizers(config)
    target = setup_lib.train_state_target(config, policy, value_state, txs, mesh)
    if step is None:  # The newest that restores (a damaged newer one is skipped, warned).
      step, state, _ = checkpointer.restore_latest(target)
    else:
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
    `eval/*` metrics, `baseline/*` for a task with baselines, plus `step` (None for the
    initial model), `source` (`checkpoint` or `initial model`), `split`, `task` and
    `time/eval`.

  Raises:
    FileNotFoundError: `step` was given but no such checkpoint exists.
    ValueError: a bad config field (one sentence naming it).
  """
  run = setup_lib.prepare(config, workdir)
  cfg, graphdef, policy, step = load_policy(config, workdir, run.tokenizer, run.mesh, step=step)
  source = "initial model" if step is None else "checkpoint"
  what = f"step {step} of {workdir}" if step is not None else _initial_description(config)
  logging.info("Evaluating the policy from %s.", what)

  sampler = setup_lib.sampler(config, graphdef, cfg, run.tokenizer, run.mesh)
  t0 = time.perf_counter()
  with setup_lib.make_pool(config) as pool:
    rng = jax.random.PRNGKey(config.seed + 1)
    metrics: dict[str, Any] = setup_lib.heldout_eval(config, run, sampler, policy, pool, rng)
    metrics.update(setup_lib.baseline_eval(config, run, pool))
  metrics["time/eval"] = time.perf_counter() - t0
  metrics.update(step=step, source=source, split=config.task.eval_split, task=run.task.name)
  if jax.process_index() == 0:
    path = output or os.path.join(workdir, "eval.json")
    with open(path, "w") as f:
      json.dump(metrics, f, indent=2, sort_keys=True)
  return metrics


def _initial_description(config) -> str:
  return f"the initial model (no checkpoint yet): {setup_lib.describe_initial_model(config)}"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}; pass options as --flags.")
  if run_flags.WORKDIR.value is None:
    raise app.UsageError("--workdir is required: the run directory to evaluate.")
  if run_flags.CONFIG.value is None:
    raise app.UsageError("--config is required: the run's config, e.g. configs/quickstart.py.")
  logs.quiet_libraries()
  distributed.initialize_from_flags()  # Before anything touches a device.
  jax.config.update("jax_threefry_partitionable", True)
  metrics = evaluate_run(
    run_flags.CONFIG.value, run_flags.WORKDIR.value, step=_STEP.value, output=_OUTPUT.value
  )
  if metrics["source"] != "checkpoint":
    print(
      f"No checkpoint in {run_flags.WORKDIR.value}: "
      f"evaluated {_initial_description(run_flags.CONFIG.value)}."
    )
  print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
  run_flags.run(main)
