"""The one place that builds a run's pieces from its config, for every entry point.

`train`, `evaluate`, `compile_check` (and the process-supervision drivers) call these;
none of them imports another entry point. What lives here:

  prepare(config, workdir)          -> Prepared: mesh, task, data_dir, tokenizer
  model_config_for / policy / value -> the models, created directly sharded
  optimizers(config)                -> Optimizers (policy, value)
  init_train_state / train_state_target -> the TrainState and its checkpoint target
  loss_config / experience_config   -> the static hyperparameters of update and experience
  sampler / sampling_params / make_pool / train_prompts / eval_batches

Every function is a pure reading of the config: the trainer's loop and the others see the
same objects, so a checkpoint written by one is restored leaf for leaf by another.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections as mlc
import numpy as np
import optax
from absl import logging
from flax import nnx

from jaxrl_verify import config_lib, distributed, evaluation, experience, learned_rewards
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import pipeline
from jaxrl_verify.data import tasks as tasks_lib
from jaxrl_verify.models import config as model_config
from jaxrl_verify.models import io as model_io
from jaxrl_verify.models.transformer import Transformer, ValueModel
from jaxrl_verify.process import red_team
from jaxrl_verify.rl import update as update_lib
from jaxrl_verify.sampler import Sampler, SamplingParams
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer
from jaxrl_verify.tokenizer import Tokenizer, load_any
from jaxrl_verify.verifiers.pool import VerifierPool

# ----------------------------------------------------------------------------- run context


@dataclasses.dataclass(frozen=True)
class Prepared:
  """What every entry point needs before it builds a model.

  Attributes:
    mesh: the device mesh of `config.mesh_shape`.
    task: the configured task, with its builder options.
    sft_task: the task whose demonstrations warm-start the policy: `task` with
      `config.sft.task_options` when those are set, else `task` itself; its `sft_field`
      is `config.sft.field` when that is set.
    data_dir: where the task's tfds data lives (generated there if missing).
    tokenizer: the run's tokenizer (see `tokenizer_for`).
    workdir: the run directory.
  """

  mesh: jax.sharding.Mesh
  task: tasks_lib.Task
  sft_task: tasks_lib.Task
  data_dir: str
  tokenizer: Tokenizer
  workdir: str


def prepare(config: mlc.ConfigDict, workdir: str, *, devices=None) -> Prepared:
  """Checks the workdir and the config, builds the mesh, prepares data and tokenizer.

  Raises:
    ValueError: a bad config field or workdir, in one sentence naming it.
  """
  config_lib.check_workdir(workdir)
  mesh = shd.make_mesh(config.mesh_shape, devices=devices)
  config_lib.validate(config, mesh)
  logging.info("Mesh %s over %d devices.", dict(mesh.shape), mesh.size)
  task = tasks_lib.get_task(config.task.name, **config.task.options)
  sft_task = task
  if config.sft.task_options:
    sft_task = tasks_lib.get_task(config.task.name, **config.sft.task_options)
  if config.sft.field:
    sft_task = dataclasses.replace(sft_task, sft_field=config.sft.field)
  data_dir = config.task.data_dir or os.path.join(workdir, "data")
  with distributed.main_process_first("prepare data"):  # No two processes write one data_dir.
    task.data_source("train", data_dir)
    if config.sft.steps and sft_task is not task:
      sft_task.data_source("train", data_dir)
  tokenizer = tokenizer_for(config, task, data_dir, workdir)
  return Prepared(mesh, task, sft_task, data_dir, tokenizer, workdir)


def tokenizer_for(config, task, data_dir: str, workdir: str) -> Tokenizer:
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
    tok = SentencePieceTokenizer.train(texts, config.tokenizer.vocab_size, path)
    logging.info("Trained a %d-piece tokenizer on the %s corpus.", tok.vocab_size, task.name)

  # Multi-host: process 0 trains it, every other process gets its bytes.
  distributed.share_file(path, train_tokenizer)
  return SentencePieceTokenizer.load(path)


# ----------------------------------------------------------------------------- models


def model_config_for(config, vocab_size: int | None) -> model_config.ModelConfig:
  """The model the run builds, without loading weights.

  Args:
    config: the experiment config.
    vocab_size: the tokenizer's vocabulary size; the model's is rounded up to a multiple
      of 128 (so it shards evenly; the padding ids are never sampled). None: the preset's
      own (or `model.overrides.vocab_size`), as for ahead-of-time compilation.
  """
  if config.model.init_from:
    cfg = model_io.load_config(config.model.init_from)
    return cfg.replace(
      dtype=config.model.dtype, param_dtype=config.model.param_dtype, remat=config.model.remat
    )
  overrides = dict(config.model.overrides)
  vocab = overrides.pop("vocab_size", None)
  if vocab_size is not None:
    vocab = vocab or -(-vocab_size // 128) * 128
    overrides.setdefault("num_valid_tokens", min(vocab_size, vocab))
  if vocab is not None:
    overrides["vocab_size"] = vocab
  return model_config.get_preset(
    config.model.preset,
    dtype=config.model.dtype,
    param_dtype=config.model.param_dtype,
    remat=config.model.remat,
    **overrides,
  )


def policy(config, tokenizer, mesh):
  """(model cfg, graphdef, sharded params) from `model.init_from` or a fresh init."""
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
  cfg = model_config_for(config, tokenizer.vocab_size)
  graphdef, state, _ = shd.create_sharded(
    lambda: Transformer(cfg, rngs=nnx.Rngs(config.seed)), mesh, rules
  )
  return cfg, graphdef, state


def uses_critic(config) -> bool:
  """Whether the run trains a value model (the `gae` estimator needs one)."""
  return config.algo.advantage == "gae"


def value(config, cfg, mesh, *, abstract: bool = False):
  """The value model: (graphdef, sharded state), or None without a critic.

  `transformer.with_policy_backbone` then copies the policy's backbone into it. With
  `abstract`, the state is `jax.ShapeDtypeStruct`s (nothing allocated).
  """
  if not uses_critic(config):
    return None
  factory = lambda: ValueModel(cfg, rngs=nnx.Rngs(config.seed + 1))  # noqa: E731
  rules = tuple(config.sharding_rules)
  if abstract:
    return shd.abstract_sharded(factory, mesh, rules)
  graphdef, state, _ = shd.create_sharded(factory, mesh, rules)
  return graphdef, state


# ------------------------------------------------------------------ optimizers, state


@dataclasses.dataclass(frozen=True)
class Optimizers:
  """The run's optax transforms.

  Attributes:
    policy: the policy's AdamW (warm-up, cosine decay, clipping, non-finite guard).
    value: the value model's, or None without a critic.
  """

  policy: optax.GradientTransformation
  value: optax.GradientTransformation | None


def optimizers(config) -> Optimizers:
  """The policy and value optimizers as `config.optim` / `config.value` describe them."""
  o = config.optim

  def make(learning_rate: float, warmup_steps: int):
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

  value_tx = make(config.value.learning_rate, 0) if uses_critic(config) else None
  return Optimizers(make(o.learning_rate, o.warmup_steps), value_tx)


def init_train_state(config, policy_state, value_state, txs: Optimizers, mesh):
  """A fresh TrainState: step 0, optimizer states sharded like their parameters, no ref yet.

  The reference policy is set after the warm start (`train` copies the policy into it).
  """
  replicated = shd.replicated(mesh)
  return update_lib.TrainState(
    step=jax.device_put(jnp.zeros((), jnp.int32), replicated),
    policy=policy_state,
    policy_opt=distributed.init_optimizer(txs.policy, policy_state, mesh),
    ref=None,
    value=value_state,
    value_opt=None
    if txs.value is None
    else distributed.init_optimizer(txs.value, value_state, mesh),
    rng=jax.device_put(jax.random.PRNGKey(config.seed), replicated),
  )


def train_state_target(config, policy_state, value_state, txs: Optimizers, mesh):
  """The abstract TrainState that `train` checkpoints, for `restore` and compilation.

  `policy_state`/`value_state` may be arrays or `jax.ShapeDtypeStruct`s with shardings;
  nothing is allocated. Leaf for leaf the tree `init_train_state` builds (with the
  reference policy when the config keeps one).
  """
  replicated = shd.replicated(mesh)

  def opt(tx, params):
    if tx is None:
      return None
    return shd.as_abstract(
      jax.eval_shape(tx.init, params), shd.optimizer_shardings(tx, params, mesh)
    )

  policy_abstract = shd.as_abstract(policy_state)
  value_abstract = None if value_state is None else shd.as_abstract(value_state)
  return update_lib.TrainState(
    step=jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
    policy=policy_abstract,
    policy_opt=opt(txs.policy, policy_abstract),
    ref=policy_abstract if config_lib.needs_ref(config) else None,
    value=value_abstract,
    value_opt=opt(txs.value, value_abstract),
    rng=jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=replicated),
  )


# ------------------------------------------------------------------ static hyperparameters


def loss_config(config) -> update_lib.LossConfig:
  """The update's static hyperparameters; the policy loss's come from its declared section."""
  a = config.algo
  return update_lib.LossConfig(
    policy_loss=a.policy_loss,
    policy_loss_hparams=config_lib.chosen_hparams(a.loss_hparams, a.policy_loss),
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


def experience_config(config, verifier: str) -> experience.ExperienceConfig:
  """How experience becomes a batch; the estimator's hyperparameters from its section."""
  a = config.algo
  needs_ref = config_lib.needs_ref(config)
  return experience.ExperienceConfig(
    group_size=config.rollout.group_size,
    verifier=verifier,
    advantage=a.advantage,
    advantage_hparams=config_lib.chosen_hparams(a.advantage_hparams, a.advantage),
    needs_ref=needs_ref,
    kl_in_reward=needs_ref and a.kl_placement == "reward",
    kl_coef=a.kl_coef,
    kl_estimator=a.kl_estimator,
    failure_policy=config.verifier.failure_policy,
    overlong_buffer=a.overlong_buffer,
    overlong_penalty=a.overlong_penalty,
    mask_truncated=a.mask_truncated,
  )


# ------------------------------------------------------------------ jitted stages


def jitted_update(config, policy_graphdef, value_graphdef, txs: Optimizers):
  """`update(state, batch) -> (state, metrics)`, jitted with the state donated."""
  losses_cfg = loss_config(config)
  logging.info(
    "Each prompt is encoded once per group of %d samples when sampling and scoring, and "
    "once per %d rows in the update's microbatches.",
    config.rollout.group_size,
    losses_cfg.prompt_repeats,
  )
  update = update_lib.make_update_fn(
    policy_graphdef, value_graphdef, txs.policy, txs.value, losses_cfg
  )
  return jax.jit(update, donate_argnums=0)


def experience_collector(
  config, run: Prepared, sampler_: Sampler, pool, policy_graphdef, value_graphdef
) -> experience.Experience:
  """The experience stage of the run: sample, rewards from `pool` (or a learned reward
  model with `pool` as its gold check), device scores, batch."""
  exp_cfg = experience_config(config, run.task.verifier)
  return experience.Experience(
    exp_cfg,
    sampler=sampler_,
    sampling=sampling_params(config),
    pool=pool,
    tokenizer=run.tokenizer,
    mesh=run.mesh,
    policy_graphdef=policy_graphdef,
    value_graphdef=value_graphdef,
    reward_source=reward_source(config, exp_cfg, pool, run.workdir, run.tokenizer),
  )


def reward_source(config, exp_cfg: experience.ExperienceConfig, pool, workdir: str, tokenizer):
  """A learned reward (`config.reward.rm_dir`, or the one `reward_bootstrap` trains into
  the workdir): a frozen reward model trains the policy, the verifier pool is its gold
  check (`learned_rewards`; `tokenizer`, the policy's, places step rewards on its tokens);
  otherwise None, the verifier pool alone."""
  r = config.reward
  if not config_lib.learned_reward(config):
    return None
  if jax.process_count() > 1:
    # Each host would score its own rows with parameters placed on the global mesh.
    raise ValueError(
      "A learned reward (config.reward.rm_dir or reward.bootstrap) runs in a single "
      "process for now; run on one host, or use the verifier alone."
    )
  from jaxrl_verify import audited_rewards, reward_bootstrap

  rm_dir = reward_bootstrap.reward_model_dir(config, workdir)
  args = (pool, exp_cfg.verifier, exp_cfg.shaping, rm_dir)
  mix = dict(
    aggregate=r.rm_aggregate,
    rm_weight=r.rm_weight,
    verifier_weight=r.verifier_weight,
    placement=r.placement,
    policy_tokenizer=tokenizer,
    judge_dirs=reward_bootstrap.judge_dirs(config, workdir),
    combine=r.ensemble.combine,
    k=r.ensemble.k,
  )
  if not r.audit.frac:
    return learned_rewards.LearnedRewards(*args, **mix)
  a = r.audit
  return audited_rewards.AuditedRewards(
    *args,
    **mix,
    audit_frac=a.frac,
    select=a.select,
    updates_per_step=a.updates_per_step,
    batch_size=a.batch_size,
    learning_rate=a.learning_rate,
    replay_path=reward_bootstrap.replay_path(config, workdir),
    checkpoint_dir=os.path.join(workdir, "reward_model_online"),
    keep_checkpoints=config.keep_checkpoints,
    seed=config.seed,
  )


# ------------------------------------------------------------------ sampling, data, pool


def sampler(config, graphdef, cfg, tokenizer, mesh) -> Sampler:
  """The jitted sampler over the run's prompt and completion lengths."""
  return Sampler(
    graphdef,
    cfg,
    max_prompt_len=config.task.max_prompt_len,
    max_new_tokens=config.rollout.max_new_tokens,
    eos_id=tokenizer.eos_id,
    pad_id=tokenizer.pad_id,
    mesh=mesh,
  )


def sampling_params(config) -> SamplingParams:
  """The rollout's sampling distribution (temperature, top-k, top-p)."""
  r = config.rollout
  return SamplingParams(temperature=r.temperature, top_k=r.top_k, top_p=r.top_p)


def make_pool(config) -> VerifierPool:
  """This host's verifier pool, as the config describes it."""
  return VerifierPool(
    num_workers=config.verifier.workers,
    timeout_s=config.verifier.timeout_s,
    memory_limit_mb=config.verifier.memory_limit_mb,
    imports=tuple(config.verifier.imports),
  )


def train_prompts(config, prepared: Prepared) -> pipeline.PromptIterator:
  """The train split, shuffled and repeated: this process's rows of each step's prompts."""
  return pipeline.PromptIterator(
    prepared.task,
    "train",
    batch_size=config.rollout.prompts_per_step,
    tokenizer=prepared.tokenizer,
    max_prompt_len=config.task.max_prompt_len,
    seed=config.seed,
    data_dir=prepared.data_dir,
    num_processes=jax.process_count(),
    process_index=jax.process_index(),
  )


def eval_batches(config, prepared: Prepared) -> pipeline.PromptIterator:
  """The held-out split, in order, once: this process's rows of each eval batch."""
  return pipeline.PromptIterator(
    prepared.task,
    config.task.eval_split,
    batch_size=config.eval.batch_size,
    tokenizer=prepared.tokenizer,
    max_prompt_len=config.task.max_prompt_len,
    seed=config.seed,
    data_dir=prepared.data_dir,
    shuffle=False,
    repeat=False,
    num_processes=jax.process_count(),
    process_index=jax.process_index(),
  )


def heldout_eval(
  config, run: Prepared, sampler_: Sampler, policy_state, pool, rng, *, reward_source=None
) -> dict:
  """Greedy accuracy, pass@k and maj@k of `policy_state` on the held-out split
  (`config.eval`); with a learned `reward_source`, its score of the same greedy
  completions too (`eval/proxy`, `eval/gold_accuracy`, `eval/hack_gap`)."""
  metrics = evaluation.evaluate(
    sampler_,
    policy_state,
    eval_batches(config, run),
    tokenizer=run.tokenizer,
    pool=pool,
    verifier=run.task.verifier,
    batch_size=config.eval.batch_size // jax.process_count(),
    k=config.eval.k,
    temperature=config.eval.temperature,
    rng=rng,
    mesh=run.mesh,
    num_examples=config.eval.num_examples,
    proxy=getattr(reward_source, "score_texts", None),
  )
  if hasattr(reward_source, "score_texts") and config.eval.red_team_problems:
    metrics.update(red_team_eval(config, run, reward_source))
  return metrics


def red_team_eval(config, run: Prepared, reward_source) -> dict[str, float]:
  """The learned reward's red-team figures (`learned_rewards.red_team_metrics`) on the
  first `eval.red_team_problems` held-out problems; none for a task whose examples carry
  no worked `solution` ending in a boxed answer."""
  batches = eval_batches(config, run)
  examples = [
    batches.examples[i] for i in range(min(config.eval.red_team_problems, len(batches.examples)))
  ]
  try:
    honest, adversarial = red_team.solution_texts(examples, np.random.default_rng(config.seed))
  except (KeyError, ValueError) as e:
    logging.log_first_n(logging.INFO, "No red team for task %r: %s", 1, config.task.name, e)
    return {}
  return learned_rewards.red_team_metrics(
    reward_source.score_texts, batches.make_batch(examples), honest, adversarial
  )


def baseline_eval(config, run: Prepared, pool) -> dict[str, float]:
  """The task's baselines (`Task.baselines`) scored by its verifier on the first
  `eval.num_examples` held-out problems: `baseline/NAME/reward` and the verifier's
  `evaluation.EVAL_EXTRAS` (e.g. `baseline/constant/prediction_reward`); none when the
  task has no baselines."""
  if run.task.baselines is None:
    return {}
  batches = eval_batches(config, run)
  examples = [
    batches.examples[i] for i in range(min(config.eval.num_examples, len(batches.examples)))
  ]
  programs = [run.task.baselines(ex) for ex in examples]
  extras = evaluation.EVAL_EXTRAS.get(run.task.verifier, {})
  metrics = {}
  for name in programs[0] if programs else ():
    tickets = [
      pool.submit(run.task.verifier, p[name], run.task.reference(ex), run.task.verifier_kwargs(ex))
      for p, ex in zip(programs, examples)
    ]
    verdicts = pool.results(tickets)
    metrics[f"baseline/{name}/reward"] = float(np.mean([v.reward for v in verdicts]))
    for key, metric in extras.items():
      values = [(v.extras or {}).get(key, 0.0) for v in verdicts]
      metrics[f"baseline/{name}/{metric.removeprefix('eval/')}"] = float(np.mean(values))
  return metrics


def describe_initial_model(config) -> str:
  """How the run's initial policy is made, in words (for logs and reports)."""
  if config.model.init_from:
    return config.model.init_from
  return f"a fresh {config.model.preset!r} init (seed {config.seed})"
