r"""RL with verifiable rewards: the training loop, in pipeline order.

  python -m jaxrl_verify.train --config=configs/quickstart.py --workdir=/tmp/qs

mesh -> data -> tokenizer -> models (shapes, shardings, arrays) -> jitted functions ->
restore, or (warm start + first eval) -> loop(experience, update, log, eval,
checkpoint) -> summary. `setup_lib` builds every piece; `experience` collects each
step's batch; this file only wires them. A run resumes from its workdir by itself.
"""

from __future__ import annotations

import importlib
import os
import time

import jax
import jax.numpy as jnp
import ml_collections as mlc
import numpy as np
from absl import app, logging

from jaxrl_verify import checkpoint as ckpt_lib
from jaxrl_verify import (
  config_lib,
  distributed,
  logs,
  periodic,
  plot,
  reward_bootstrap,
  run_flags,
  setup_lib,
  sft,
)
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import pipeline
from jaxrl_verify.metrics import MetricsWriter
from jaxrl_verify.models import transformer
from jaxrl_verify.rl import update as update_lib
from jaxrl_verify.verifiers import base as verifier_base


def train_and_evaluate(
  config: mlc.ConfigDict, workdir: str, *, stop_after: int | None = None
) -> tuple[update_lib.TrainState, dict[str, float]]:
  """Runs (or resumes) the experiment in `workdir`.

  Args:
    config: the experiment config.
    workdir: run directory; a checkpoint there is resumed from.
    stop_after: save and stop after this step as a preemption would (the schedule
      still spans `config.total_steps`); for time-sliced jobs and resume tests.

  Returns:
    (final TrainState, the last step's metrics).
  """
  t_start = time.perf_counter()
  # ---------------------------------------------------------------- mesh, data, tokenizer
  run = setup_lib.prepare(config, workdir)
  prompts = setup_lib.train_prompts(config, run)

  # ---------------------------------------------------------------- models and state
  cfg, policy_graphdef, policy = setup_lib.policy(config, run.tokenizer, run.mesh)
  shd.log_shardings(policy, "Policy")
  value_graphdef, value = setup_lib.value(config, cfg, run.mesh) or (None, None)
  txs = setup_lib.optimizers(config)
  state = setup_lib.init_train_state(config, policy, value, txs, run.mesh)

  # ---------------------------------------------------------------- jitted functions
  sampler = setup_lib.sampler(config, policy_graphdef, cfg, run.tokenizer, run.mesh)
  update_fn = setup_lib.jitted_update(config, policy_graphdef, value_graphdef, txs)
  _check_verifier(config, run.task.verifier)
  pool = setup_lib.make_pool(config)
  collector = setup_lib.experience_collector(
    config, run, sampler, pool, policy_graphdef, value_graphdef
  )
  run_eval = _evaluator(config, run, sampler, pool, collector.reward_source)
  checkpointer = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
  )

  def save(step: int, state) -> None:
    if hasattr(collector.reward_source, "save"):  # A reward model that learns online.
      collector.reward_source.save(step)  # First: the run's step N implies the RM's.
    meta = {"data": prompts.get_state(), "policy_version": step, "config": config.to_dict()}
    checkpointer.save(step, state, meta, force=True)

  # ---------------------------------------------------------------- restore, or warm start
  start = None
  if checkpointer.latest_step() is not None:
    # The newest checkpoint that restores; damaged newer ones are set aside, with a warning.
    target = setup_lib.train_state_target(config, state.policy, state.value, txs, run.mesh)
    start, state, meta = checkpointer.restore_latest(target, set_aside_damaged=True)
    prompts.set_state(meta["data"])
    if hasattr(collector.reward_source, "restore"):
      collector.reward_source.restore(start)
    logging.info("Resumed from step %d of %s.", start, workdir)
  writer = MetricsWriter(
    workdir,
    is_main_process=distributed.is_main_process(),
    total_steps=config.total_steps,
    resume_step=start,
  )
  if start is None:
    state = _warm_start(config, run, policy_graphdef, state)
    if reward_bootstrap.enabled(config):  # The ORM learns from the initial policy's samples.
      reward_bootstrap.ensure_reward_model(config, workdir, run, collector, pool, state, cfg)
    rng, eval_rng = jax.random.split(state.rng)
    state = state.replace(rng=rng)
    writer.write(0, run_eval(state.policy, eval_rng))
    save(0, state)
    start = 0

  # ---------------------------------------------------------------- the loop
  metrics: dict[str, float] = {}
  failed_steps = nonfinite_steps = 0
  stopped_at = None
  try:
    with ckpt_lib.PreemptionGuard() as guard:
      for step in range(start + 1, config.total_steps + 1):
        t_step = time.perf_counter()
        rng, sample_rng, eval_rng = jax.random.split(state.rng, 3)
        state = state.replace(rng=rng)
        pool.reset_stats()
        if config.algo.dynamic_sampling:
          batch, metrics = collector.collect_dynamic(
            state, prompts, sample_rng, max_rounds=config.algo.max_resample_rounds
          )
        else:
          one = collector.collect(state, next(prompts), sample_rng)
          batch, metrics = one.batch, one.metrics
        failed_steps = _check_verifier_health(metrics, failed_steps)
        metrics.update(global_pool_stats(pool.stats()))

        t0 = time.perf_counter()
        state, update_metrics = update_fn(state, batch)
        metrics.update(jax.device_get(update_metrics))  # Blocks: honest per-phase timings.
        metrics["time/update"] = time.perf_counter() - t0
        metrics["time/step"] = time.perf_counter() - t_step

        # Held-out eval: periodically, and always after the last step.
        if step == config.total_steps or periodic.every(step, config.eval.every):
          metrics.update(run_eval(state.policy, eval_rng))
        if "eval/accuracy" in metrics or periodic.every(
          step, config.log_every, total_steps=config.total_steps
        ):
          writer.write(step, metrics)
        nonfinite_steps = _check_finite_updates(
          config, metrics, nonfinite_steps, last_saved=checkpointer.latest_step()
        )
        stop = guard.should_stop_any_process() or step == stop_after
        if stop or periodic.every(step, config.checkpoint_every, total_steps=config.total_steps):
          save(step, state)
        if stop:
          why = guard.signal_name or "stop_after"
          logging.warning("Stopping at step %d (%s); resume with the same command.", step, why)
          stopped_at = step
          break
    checkpointer.wait()
  finally:
    # ------------------------------------------------------------ wrap up (also on errors)
    checkpointer.close()
    writer.close()
    pool.close()
  if distributed.is_main_process():
    plot.plot_reward_curve(workdir)
    if config_lib.learned_reward(config):
      plot.plot_overoptimisation([workdir])
    wall_s = time.perf_counter() - t_start
    print(logs.run_summary(workdir, wall_s=wall_s, stopped_at=stopped_at), flush=True)
  return state, metrics


# ----------------------------------------------------------------------------- steps of the run


def _evaluator(config, run: setup_lib.Prepared, sampler, pool, reward_source):
  """`run_eval(policy_state, rng) -> metrics`: greedy accuracy, pass@k, maj@k, held out."""

  def run_eval(policy_state, rng) -> dict[str, float]:
    t0 = time.perf_counter()
    m = setup_lib.heldout_eval(
      config, run, sampler, policy_state, pool, rng, reward_source=reward_source
    )
    return {**m, "time/eval": time.perf_counter() - t0}

  return run_eval


def _warm_start(config, run: setup_lib.Prepared, policy_graphdef, state):
  """A fresh run's initial state: supervised warm start, critic backbone, reference copy."""
  if config.sft.steps:
    t0 = time.perf_counter()
    pairs = pipeline.sft_examples(run.sft_task, "train", data_dir=run.data_dir, seed=config.seed)
    pairs = sft.with_box_noise(pairs, config.sft.box_noise, config.seed)
    policy = sft.warm_start(
      policy_graphdef,
      state.policy,
      pairs,
      run.tokenizer,
      steps=config.sft.steps,
      batch_size=config.sft.batch_size,
      learning_rate=config.sft.learning_rate,
      max_len=config.sft.max_len,
      mesh=run.mesh,
      log=lambda i, loss: logging.info("SFT step %d: loss %.4f", i, loss),
    )
    state = state.replace(policy=policy)
    seconds = time.perf_counter() - t0
    logging.info("Supervised warm start: %d steps in %.1f s.", config.sft.steps, seconds)
  if state.value is not None:  # The critic starts from the (warm-started) policy's backbone.
    state = state.replace(value=transformer.with_policy_backbone(state.value, state.policy))
  if config_lib.needs_ref(config):
    state = state.replace(ref=jax.tree.map(jnp.copy, state.policy))
  return state


def _check_verifier(config, verifier: str) -> None:
  """Imports user verifier modules here too and checks the task's verifier name now,
  not as masked errors later."""
  for module in config.verifier.imports:
    importlib.import_module(module)
  verifier_base.get(verifier)


def global_pool_stats(stats: dict[str, float]) -> dict[str, float]:
  """This step's pool counters over every host (a collective; each host runs its own pool).

  Counts and throughputs add up, `verify/latency_max_s` is the largest; the pool's
  latency percentiles are left out: the experience stage logs them from the gathered
  verdicts of all hosts.
  """
  keys = sorted(k for k in stats if not k.startswith("verify/latency_p"))
  rows_pk = distributed.gather_rows(np.array([[stats[k] for k in keys]], np.float64))
  reduce = lambda k: np.max if k.endswith("_max_s") else np.sum  # noqa: E731
  return {k: float(reduce(k)(rows_pk[:, j])) for j, k in enumerate(keys)}


def _check_verifier_health(metrics: dict[str, float], failed_steps: int, patience: int = 3) -> int:
  """Counts consecutive steps whose every verdict failed; raises after `patience`.

  With failures masked out of the loss such a run would train on nothing, silently.
  """
  failed = metrics["verify/frac_error"] + metrics["verify/frac_timeout"] >= 1.0
  failed_steps = failed_steps + 1 if failed else 0
  if failed_steps >= patience:
    raise RuntimeError(
      f"Every verdict of the last {patience} steps was an error or a timeout, so nothing "
      "is being learnt; check the verifier on a few completions with "
      "`python -m jaxrl_verify.score` (config.verifier.timeout_s, config.verifier.imports)."
    )
  return failed_steps


def _check_finite_updates(
  config, metrics: dict[str, float], nonfinite_steps: int, *, last_saved: int | None
) -> int:
  """Counts consecutive RL steps whose every optimizer step was skipped for non-finite
  gradients (each leaves the state untouched); raises after `config.max_nonfinite_steps`."""
  skipped_all = metrics["update/skipped_nonfinite"] >= metrics["update/optimizer_steps"]
  nonfinite_steps = nonfinite_steps + 1 if skipped_all else 0
  if nonfinite_steps >= config.max_nonfinite_steps:
    raise RuntimeError(
      f"The last {nonfinite_steps} RL steps had non-finite gradients in every optimizer "
      "step, so each update was skipped and nothing is being learnt; likely causes are "
      f"config.optim.learning_rate ({config.optim.learning_rate}) too high for the model, "
      f"logits overflowing in config.model.dtype ({config.model.dtype}), or non-finite "
      "advantages (see verify/frac_nonfinite_reward and loss/* in metrics.jsonl); no "
      f"skipped update changed the parameters, and the last checkpoint is step {last_saved}."
    )
  return nonfinite_steps


def main(argv):
  del argv
  if run_flags.WORKDIR.value is None:
    raise app.UsageError("--workdir is required: the run directory (created if missing).")
  if run_flags.CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/quickstart.py.")
  logs.quiet_libraries()
  distributed.initialize_from_flags()  # Before anything touches a device.
  if not distributed.is_main_process():
    logging.set_verbosity(logging.WARNING)  # Process 0 logs; the others only warn.
  jax.config.update("jax_threefry_partitionable", True)
  train_and_evaluate(run_flags.CONFIG.value, run_flags.WORKDIR.value)


if __name__ == "__main__":
  run_flags.run(main)
