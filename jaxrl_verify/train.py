r"""RL with verifiable rewards: the training loop, in pipeline order.

  python -m jaxrl_verify.train --config=configs/quickstart.py --workdir=/tmp/qs

mesh -> data -> tokenizer -> models (shapes, shardings, arrays) -> restore or
(warm start + first eval) -> jitted functions -> loop(sample, verify, advantages,
update, log, checkpoint, eval). Every stage is a call into a module; this file
only wires them. A run resumes from its workdir by itself.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections as mlc
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from jaxrl_verify import checkpoint as ckpt_lib
from jaxrl_verify import config_lib, distributed, evaluation, experience, periodic, plot, sft
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import pipeline
from jaxrl_verify.data import tasks as tasks_lib
from jaxrl_verify.metrics import MetricsWriter
from jaxrl_verify.models import config as model_config
from jaxrl_verify.models import io as model_io
from jaxrl_verify.models import transformer
from jaxrl_verify.models.transformer import Transformer, ValueModel
from jaxrl_verify.rl import update as update_lib
from jaxrl_verify.sampler import Sampler, SamplingParams
from jaxrl_verify.tokenizer import Tokenizer, load_any
from jaxrl_verify.verifiers import base as verifier_base
from jaxrl_verify.verifiers.pool import VerifierPool

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")


# ----------------------------------------------------------------------------- set-up helpers


def setup_tokenizer(config, task, data_dir: str, workdir: str) -> Tokenizer:
  """The configured tokenizer, the init checkpoint's, or one trained on the task corpus.

  A trained tokenizer is written to WORKDIR/tokenizer.model and reused on resume.
  """
  if config.tokenizer.path:
    return load_any(config.tokenizer.path)  # sentencepiece .model or HF tokenizer.json
  if config.model.init_from:
    tok = model_io.load_tokenizer(config.model.init_from)
    if tok is None:
      raise ValueError(
        f"config.model.init_from={config.model.init_from!r} carries no tokenizer; set "
        "config.tokenizer.path to its tokenizer.json or sentencepiece .model file."
      )
    return tok
  path = os.path.join(workdir, "tokenizer.model")

  def train_tokenizer():
    texts = pipeline.texts_for_tokenizer(task, data_dir)
    tok = Tokenizer.train(texts, config.tokenizer.vocab_size, path)
    logging.info("Trained a %d-piece tokenizer on the %s corpus.", tok.vocab_size, task.name)

  # Multi-host: process 0 trains it, every other process gets its bytes.
  distributed.share_file(path, train_tokenizer)
  return Tokenizer.load(path)


def model_config_for(config, tokenizer: Tokenizer) -> model_config.ModelConfig:
  """The preset with the config's overrides and a vocabulary that fits the tokenizer."""
  overrides = dict(config.model.overrides)
  # Rounded up so the vocabulary shards evenly; the padding ids are masked out.
  vocab = overrides.pop("vocab_size", None) or -(-tokenizer.vocab_size // 128) * 128
  overrides.setdefault("num_valid_tokens", min(tokenizer.vocab_size, vocab))
  return model_config.get_preset(
    config.model.preset,
    vocab_size=vocab,
    dtype=config.model.dtype,
    param_dtype=config.model.param_dtype,
    remat=config.model.remat,
    **overrides,
  )


def setup_policy(config, tokenizer, mesh):
  """(model cfg, graphdef, sharded params) from `init_from` or a fresh init."""
  rules = tuple(config.sharding_rules)
  if config.model.init_from:
    loaded = model_io.load_model(
      config.model.init_from,
      mesh=mesh,
      rules=rules,
      param_dtype=config.model.param_dtype,
      dtype=config.model.dtype,
    )
    if loaded.cfg.vocab_size < tokenizer.vocab_size:
      raise ValueError(
        f"The tokenizer has {tokenizer.vocab_size} ids but the model at "
        f"{config.model.init_from} only {loaded.cfg.vocab_size}; use the model's tokenizer."
      )
    if loaded.cfg.vocab_size == tokenizer.vocab_size:
      return loaded.cfg, loaded.graphdef, loaded.state
    # Embedding rows past the tokenizer's ids are never sampled (see ModelConfig).
    cfg = loaded.cfg.replace(num_valid_tokens=tokenizer.vocab_size)
    graphdef = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))[0]
    return cfg, graphdef, loaded.state
  cfg = model_config_for(config, tokenizer)
  graphdef, state, _ = shd.create_sharded(
    lambda: Transformer(cfg, rngs=nnx.Rngs(config.seed)), mesh, rules
  )
  return cfg, graphdef, state


def setup_value(cfg, mesh, rules, seed: int):
  """A value model (graphdef, sharded state); `transformer.with_policy_backbone` initialises it."""
  graphdef, state, _ = shd.create_sharded(
    lambda: ValueModel(cfg, rngs=nnx.Rngs(seed + 1)), mesh, rules
  )
  return graphdef, state


def advantage_hparams(config) -> tuple[tuple[str, Any], ...]:
  a = config.algo
  if a.advantage == "gae":
    lam_c = None if a.lambda_critic < 0 else a.lambda_critic
    return (("gamma", a.gamma), ("lam", a.lam), ("lambda_critic", lam_c))
  return ()


def loss_config(config) -> update_lib.LossConfig:
  a = config.algo
  return update_lib.LossConfig(
    eps_low=a.eps_low,
    eps_high=a.eps_high,
    dual_clip_c=a.dual_clip_c or None,
    aggregation=a.aggregation,
    entropy_coef=a.entropy_coef,
    kl_coef=a.kl_coef,
    kl_estimator=a.kl_estimator,
    kl_in_loss=a.kl_placement == "loss" and a.kl_coef > 0,
    has_ref=config_lib.needs_ref(config),
    tis_cap=a.tis_cap or None,
    value_coef=a.value_coef,
    value_clip_eps=a.value_clip_eps or None,
    epochs=config.ppo.epochs,
    minibatches=config.ppo.minibatches,
    grad_accum_steps=config.optim.grad_accum_steps,
    critic_warmup_steps=config.value.warmup_steps,
    prompt_repeats=update_lib.prompt_repeats_for(
      config.rollout.group_size, config.ppo.minibatches, config.optim.grad_accum_steps
    ),
  )


def _optimizer(config, learning_rate: float, warmup_steps: int):
  o = config.optim
  return update_lib.make_optimizer(
    learning_rate,
    total_steps=config.total_steps,
    warmup_steps=warmup_steps,
    min_lr_ratio=o.min_lr_ratio,
    weight_decay=o.weight_decay,
    b1=o.b1,
    b2=o.b2,
    grad_clip=o.grad_clip,
    steps_per_iteration=config.ppo.epochs * config.ppo.minibatches,
  )


def make_pool(config) -> VerifierPool:
  """This host's verifier pool, as the config describes it."""
  return VerifierPool(
    num_workers=config.verifier.workers,
    timeout_s=config.verifier.timeout_s,
    memory_limit_mb=config.verifier.memory_limit_mb,
    imports=tuple(config.verifier.imports),
  )


def eval_batches(task, config, tokenizer, data_dir):
  """The held-out split, in order, once: this process's rows of each eval batch."""
  return pipeline.PromptIterator(
    task,
    config.task.eval_split,
    batch_size=config.eval.batch_size,
    tokenizer=tokenizer,
    max_prompt_len=config.task.max_prompt_len,
    seed=config.seed,
    data_dir=data_dir,
    shuffle=False,
    repeat=False,
    num_processes=jax.process_count(),
    process_index=jax.process_index(),
  )


# ----------------------------------------------------------------------------- the run


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
  # ---------------------------------------------------------------- mesh and config
  config_lib.check_workdir(workdir)
  mesh = shd.make_mesh(config.mesh_shape)
  config_lib.validate(config, mesh)
  rules = tuple(config.sharding_rules)
  logging.info("Mesh %s over %d devices.", dict(mesh.shape), mesh.size)

  # ---------------------------------------------------------------- data and tokenizer
  task = tasks_lib.get_task(config.task.name, **config.task.options)
  data_dir = config.task.data_dir or os.path.join(workdir, "data")
  with distributed.main_process_first("prepare data"):  # No two processes write one data_dir.
    task.data_source("train", data_dir)
  tokenizer = setup_tokenizer(config, task, data_dir, workdir)
  prompts = pipeline.PromptIterator(
    task,
    "train",
    batch_size=config.rollout.prompts_per_step,
    tokenizer=tokenizer,
    max_prompt_len=config.task.max_prompt_len,
    seed=config.seed,
    data_dir=data_dir,
    num_processes=jax.process_count(),
    process_index=jax.process_index(),
  )

  # ---------------------------------------------------------------- models and state
  cfg, policy_graphdef, policy = setup_policy(config, tokenizer, mesh)
  shd.log_shardings(policy, "Policy")
  use_critic = config.algo.advantage == "gae"
  needs_ref = config_lib.needs_ref(config)
  value_graphdef = value = None
  if use_critic:
    value_graphdef, value = setup_value(cfg, mesh, rules, config.seed)
  policy_tx = _optimizer(config, config.optim.learning_rate, config.optim.warmup_steps)
  value_tx = _optimizer(config, config.value.learning_rate, 0) if use_critic else None
  state = update_lib.TrainState(
    step=jax.device_put(jnp.zeros((), jnp.int32), shd.replicated(mesh)),
    policy=policy,
    policy_opt=distributed.init_optimizer(policy_tx, policy, mesh),
    ref=None,
    value=value,
    value_opt=distributed.init_optimizer(value_tx, value, mesh) if use_critic else None,
    rng=jax.device_put(jax.random.PRNGKey(config.seed), shd.replicated(mesh)),
  )

  # ---------------------------------------------------------------- jitted functions
  sampler = Sampler(
    policy_graphdef,
    cfg,
    max_prompt_len=config.task.max_prompt_len,
    max_new_tokens=config.rollout.max_new_tokens,
    eos_id=tokenizer.eos_id,
    pad_id=tokenizer.pad_id,
    mesh=mesh,
  )
  sampling = SamplingParams(
    temperature=config.rollout.temperature, top_k=config.rollout.top_k, top_p=config.rollout.top_p
  )
  scorer = experience.DeviceScorer(
    policy_graphdef,
    value_graphdef,
    experience.ExperienceConfig(
      group_size=config.rollout.group_size,
      advantage=config.algo.advantage,
      advantage_hparams=advantage_hparams(config),
      needs_ref=needs_ref,
      kl_in_reward=needs_ref and config.algo.kl_placement == "reward",
      kl_coef=config.algo.kl_coef,
      kl_estimator=config.algo.kl_estimator,
      failure_policy=config.verifier.failure_policy,
      overlong_buffer=config.algo.overlong_buffer,
      overlong_penalty=config.algo.overlong_penalty,
      mask_truncated=config.algo.mask_truncated,
    ),
  )
  losses_cfg = loss_config(config)
  logging.info(
    "Each prompt is encoded once per group of %d samples when sampling and scoring, and "
    "once per %d rows in the update's microbatches.",
    config.rollout.group_size,
    losses_cfg.prompt_repeats,
  )
  update_fn = jax.jit(
    update_lib.make_update_fn(policy_graphdef, value_graphdef, policy_tx, value_tx, losses_cfg),
    donate_argnums=0,
  )

  for module in config.verifier.imports:  # Registers user verifiers here too, to check names.
    importlib.import_module(module)
  verifier_base.get(task.verifier)  # An unknown name fails now, not as masked errors later.
  pool = make_pool(config)
  checkpointer = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
  )

  def run_eval(step_state, rng) -> dict[str, float]:
    t0 = time.perf_counter()
    m = evaluation.evaluate(
      sampler,
      step_state.policy,
      eval_batches(task, config, tokenizer, data_dir),
      tokenizer=tokenizer,
      pool=pool,
      verifier=task.verifier,
      batch_size=config.eval.batch_size // jax.process_count(),
      k=config.eval.k,
      temperature=config.eval.temperature,
      rng=rng,
      mesh=mesh,
      num_examples=config.eval.num_examples,
    )
    m["time/eval"] = time.perf_counter() - t0
    return m

  # ---------------------------------------------------------------- restore, or warm start
  start = checkpointer.latest_step()
  writer = MetricsWriter(
    workdir,
    is_main_process=distributed.is_main_process(),
    total_steps=config.total_steps,
    resume_step=start,
  )
  if start is not None:
    ref_template = state.policy if needs_ref else None
    target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state.replace(ref=ref_template),
    )
    state, meta = checkpointer.restore(start, target_pytree=target)
    prompts.set_state(meta["data"])
    logging.info("Resumed from step %d of %s.", start, workdir)
  else:
    if config.sft.steps:
      t0 = time.perf_counter()
      pairs = pipeline.sft_examples(task, "train", data_dir=data_dir, seed=config.seed)
      pairs = sft.with_box_noise(pairs, config.sft.box_noise, config.seed)
      policy = sft.warm_start(
        policy_graphdef,
        state.policy,
        pairs,
        tokenizer,
        steps=config.sft.steps,
        batch_size=config.sft.batch_size,
        learning_rate=config.sft.learning_rate,
        max_len=config.sft.max_len,
        mesh=mesh,
        log=lambda i, loss: logging.info("SFT step %d: loss %.4f", i, loss),
      )
      state = state.replace(policy=policy)
      logging.info(
        "Supervised warm start: %d steps in %.1f s.", config.sft.steps, time.perf_counter() - t0
      )
    if use_critic:  # The critic starts from the (warm-started) policy's backbone.
      state = state.replace(value=transformer.with_policy_backbone(state.value, state.policy))
    if needs_ref:
      state = state.replace(ref=jax.tree.map(jnp.copy, state.policy))
    rng, eval_rng = jax.random.split(state.rng)
    state = state.replace(rng=rng)
    writer.write(0, run_eval(state, eval_rng))
    checkpointer.save(
      0,
      state,
      {"data": prompts.get_state(), "policy_version": 0, "config": config.to_dict()},
      force=True,
    )
    start = 0

  # ---------------------------------------------------------------- the loop
  collect_parts = dict(
    sampler=sampler,
    sampling=sampling,
    scorer=scorer,
    pool=pool,
    verifier=task.verifier,
    tokenizer=tokenizer,
    mesh=mesh,
  )
  metrics: dict[str, float] = {}
  failed_steps = 0
  try:
    with ckpt_lib.PreemptionGuard() as guard:
      for step in range(start + 1, config.total_steps + 1):
        t_step = time.perf_counter()
        rng, sample_rng, eval_rng = jax.random.split(state.rng, 3)
        state = state.replace(rng=rng)
        if config.algo.dynamic_sampling:
          batch, metrics, _ = experience.collect_dynamic(
            state, prompts, sample_rng, max_rounds=config.algo.max_resample_rounds, **collect_parts
          )
        else:
          batch, metrics, _ = experience.collect(state, next(prompts), sample_rng, **collect_parts)
        failed_steps = _check_verifier_health(metrics, failed_steps)

        t0 = time.perf_counter()
        state, update_metrics = update_fn(state, batch)
        metrics.update(jax.device_get(update_metrics))  # Blocks: honest per-phase timings.
        metrics["time/update"] = time.perf_counter() - t0
        metrics["time/step"] = time.perf_counter() - t_step
        metrics.update(pool.stats())
        pool.reset_stats()

        # Held-out eval: periodically, and always after the last step.
        if step == config.total_steps or periodic.every(step, config.eval.every):
          metrics.update(run_eval(state, eval_rng))
        if "eval/accuracy" in metrics or periodic.every(
          step, config.log_every, total_steps=config.total_steps
        ):
          writer.write(step, metrics)
        stop = guard.should_stop_any_process() or step == stop_after
        if stop or periodic.every(step, config.checkpoint_every, total_steps=config.total_steps):
          checkpointer.save(
            step,
            state,
            {"data": prompts.get_state(), "policy_version": step, "config": config.to_dict()},
            force=True,
          )
        if stop:
          why = guard.signal_name or "stop_after"
          logging.warning("Stopping at step %d (%s); resume with the same command.", step, why)
          break
    checkpointer.wait()
  finally:
    # ------------------------------------------------------------ wrap up (also on errors)
    checkpointer.close()
    writer.close()
    pool.close()
  if distributed.is_main_process():
    plot.plot_reward_curve(workdir)
  return state, metrics


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


def main(argv):
  del argv
  if _WORKDIR.value is None:
    raise app.UsageError("--workdir is required: the run directory (created if missing).")
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/quickstart.py.")
  distributed.initialize_from_flags()  # Before anything touches a device.
  if not distributed.is_main_process():
    logging.set_verbosity(logging.WARNING)  # Process 0 logs; the others only warn.
  jax.config.update("jax_threefry_partitionable", True)
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
