"""The base experiment config and its validation.

Experiments are files in `configs/` whose `get_config(arg)` starts from
`base_config()` and changes what the experiment is about. `validate` runs before
anything is compiled and answers a bad field with one sentence naming it.
"""

from __future__ import annotations

import os
import tempfile
import typing

import ml_collections as mlc

from jaxrl_verify import sharding
from jaxrl_verify.registry import Registry
from jaxrl_verify.rl import advantages, losses
from jaxrl_verify.rl.shaping import FAILURE_POLICIES

GROUP_ESTIMATORS = ("grpo", "dr_grpo", "rloo")
KL_PLACEMENTS = ("loss", "reward", "none")


def base_config() -> mlc.ConfigDict:
  """Defaults shared by every experiment (each field documented inline)."""
  c = mlc.ConfigDict()
  c.seed = 0
  c.total_steps = 100  # RL iterations.
  c.mesh_shape = (-1, 1, 1)  # (data, fsdp, tensor); -1 takes the remaining devices.
  c.sharding_rules = tuple((k, v) for k, v in sharding.DEFAULT_RULES)

  c.model = mlc.ConfigDict()
  c.model.preset = "tiny"
  c.model.init_from = ""  # A directory written by `models.import_hf` or `models.io.save_model`.
  c.model.dtype = "float32"
  c.model.param_dtype = "float32"
  c.model.remat = "none"
  c.model.overrides = mlc.ConfigDict()  # Any other ModelConfig field, e.g. num_layers.

  c.task = mlc.ConfigDict()
  c.task.name = "arithmetic"
  c.task.options = mlc.ConfigDict()  # Builder options, e.g. difficulty, num_train.
  c.task.data_dir = ""  # Default: WORKDIR/data.
  c.task.max_prompt_len = 64
  c.task.eval_split = "test"

  c.tokenizer = mlc.ConfigDict()
  # A sentencepiece .model, an HF tokenizer.json, or a directory holding one;
  # default: the init checkpoint's, else one trained on the task corpus.
  c.tokenizer.path = ""
  c.tokenizer.vocab_size = 512  # When training one on the task corpus.

  # Supervised warm start on the task's demonstrations before RL (0 steps: none).
  c.sft = mlc.ConfigDict()
  c.sft.steps = 0
  c.sft.batch_size = 32
  c.sft.learning_rate = 1e-3
  c.sft.max_len = 128
  c.sft.box_noise = 0.0  # Fraction of demonstrations that box a wrong number (imperfect demos).
  # Builder options of the demonstrations' task (e.g. easier levels than RL trains on);
  # empty: the RL task's own options (`task.options`).
  c.sft.task_options = mlc.ConfigDict()
  # The example field holding the demonstrations; empty: the task's own `sft_field` (e.g.
  # `warm_start` for the simulator tasks: the right program with wrong constants).
  c.sft.field = ""

  c.rollout = mlc.ConfigDict()
  c.rollout.prompts_per_step = 8
  c.rollout.group_size = 8
  c.rollout.max_new_tokens = 32
  c.rollout.temperature = 1.0
  c.rollout.top_k = 0
  c.rollout.top_p = 1.0

  c.verifier = mlc.ConfigDict()
  c.verifier.workers = 2
  c.verifier.timeout_s = 5.0
  c.verifier.memory_limit_mb = 2048
  c.verifier.failure_policy = "mask"  # Timeouts/errors: `mask` out of the loss, or `zero` reward.
  c.verifier.imports = ()  # Extra modules the workers import (user-registered verifiers).

  # Estimators and losses declare their hyperparameters as keyword-only parameters with
  # defaults; each gets a section here with those defaults (`declared_hparams`), e.g.
  # --config.algo.advantage_hparams.gae.lam=0.9 or ...loss_hparams.ppo_clip.dual_clip_c=3.
  c.algo = mlc.ConfigDict()
  c.algo.advantage = "grpo"  # An `rl.advantages.ADVANTAGES` name.
  c.algo.advantage_hparams = declared_hparams(advantages.ADVANTAGES)
  c.algo.policy_loss = "ppo_clip"  # An `rl.losses.POLICY_LOSSES` name.
  c.algo.loss_hparams = declared_hparams(losses.POLICY_LOSSES)
  c.algo.loss_hparams.ppo_clip.eps_high = 0.28  # Clip-higher (DAPO) by default.
  c.algo.aggregation = "token_mean"
  c.algo.entropy_coef = 0.0
  c.algo.kl_coef = 0.0
  c.algo.kl_estimator = "k3"
  c.algo.kl_placement = "loss"  # `loss`, `reward` or `none`.
  c.algo.tis_cap = 2.0  # Truncated importance sampling cap; 0: off.
  c.algo.value_coef = 1.0
  c.algo.value_clip_eps = 0.2
  c.algo.dynamic_sampling = False  # DAPO: drop groups whose rewards are all equal, refill.
  c.algo.max_resample_rounds = 4
  c.algo.overlong_buffer = 0  # DAPO soft overlong punishment over the last N tokens; 0: off.
  c.algo.overlong_penalty = 1.0
  c.algo.mask_truncated = False  # Exclude rows that hit max_new_tokens from the loss.

  c.optim = mlc.ConfigDict()
  c.optim.learning_rate = 1e-5
  c.optim.warmup_steps = 0
  c.optim.min_lr_ratio = 0.1
  c.optim.weight_decay = 0.0
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.grad_clip = 1.0
  c.optim.grad_accum_steps = 1

  c.ppo = mlc.ConfigDict()
  c.ppo.epochs = 1
  c.ppo.minibatches = 1

  c.value = mlc.ConfigDict()
  c.value.learning_rate = 1e-4
  c.value.warmup_steps = 0  # Critic-only iterations before the policy moves.

  c.eval = mlc.ConfigDict()
  c.eval.every = 0  # RL iterations between evals (0: only before the first and after the last).
  c.eval.num_examples = 128
  c.eval.k = 4  # pass@k / maj@k samples per problem.
  c.eval.temperature = 1.0
  c.eval.batch_size = 64
  # With a learned reward: its scores of fixed adversarial solutions of this many held-out
  # problems against their honest solutions (`process.red_team`), as `eval/red_team/*`.
  c.eval.red_team_problems = 64

  # A learned reward model instead of (or mixed with) the verifier; the verifier then runs
  # beside it as the gold check (`reward/proxy`, `reward/gold`, `reward/hack_gap`).
  c.reward = mlc.ConfigDict()
  c.reward.rm_dir = ""  # A `process.train_rm` workdir; empty: the verifier alone rewards.
  c.reward.rm_aggregate = "last"  # Step probabilities -> one score: min, product, last.
  c.reward.rm_weight = 1.0
  c.reward.verifier_weight = 0.0
  # `outcome`: one RM score per completion. `steps`: a PRM's probability of every step on
  # the step's last token (Math-Shepherd's step-by-step PPO with `gae`, DeepSeekMath's
  # process supervision with `grpo_process`); the verifier's reward (x verifier_weight) is
  # then the outcome reward.
  c.reward.placement = "outcome"
  # Or an outcome RM trained at the start of the run on the initial policy's verified
  # samples (`reward_bootstrap`, into WORKDIR/reward_model): Gao et al.'s overoptimisation
  # setup. On when `problems` > 0 (and `rm_dir` is empty).
  c.reward.bootstrap = mlc.ConfigDict()
  c.reward.bootstrap.problems = 0  # Train prompts sampled, rollout.group_size samples each.
  # `orm`: every step labelled with the completion's outcome. `prm`: Math-Shepherd labels,
  # `label.num_rollouts` continuations of every step prefix by the initial policy, verified.
  c.reward.bootstrap.kind = "orm"
  c.reward.bootstrap.label = mlc.ConfigDict({"num_rollouts": 8, "prefixes_per_call": 16})
  c.reward.bootstrap.test_frac = 0.125  # Of those problems, held out for the RM's eval.
  c.reward.bootstrap.step_format = "lines"  # How the RM splits a completion into steps.
  c.reward.bootstrap.init_from_policy = True  # The ORM's backbone: the initial policy's.
  c.reward.bootstrap.seed_offset = 1  # Its sample order and init seed: config.seed + this.
  # The ORM's `process.train_rm` settings (these over `process.rm_config`'s defaults).
  c.reward.bootstrap.rm = mlc.ConfigDict()
  c.reward.bootstrap.rm.total_steps = 300
  c.reward.bootstrap.rm.model = mlc.ConfigDict({"preset": "mini"})  # Unless init_from_policy.
  c.reward.bootstrap.rm.rm = mlc.ConfigDict({"max_len": 256, "max_steps": 16})
  c.reward.bootstrap.rm.optim = mlc.ConfigDict({"learning_rate": 1e-4, "batch_size": 32})
  c.reward.bootstrap.rm.eval = mlc.ConfigDict({"every": 100, "batch_size": 32})
  # An independent reward model, trained the same way but with its own seed, problems
  # disjoint from the optimised one's and (by default) a smaller fresh backbone, frozen
  # (`reward_bootstrap`, into WORKDIR/reward_model_independent). On when `problems` > 0.
  c.reward.independent = mlc.ConfigDict(c.reward.bootstrap.to_dict())
  c.reward.independent.seed_offset = 2
  c.reward.independent.init_from_policy = False
  c.reward.independent.rm.model.preset = "tiny"
  # How the optimised RM and the independent one make the training score: `judge` (the
  # optimised one trains, the independent one only measures: `reward/judge`), `min` or
  # `mean_std` (mean - k * std): pessimistic ensembles.
  c.reward.ensemble = mlc.ConfigDict({"combine": "judge", "k": 1.0})
  # An adversarial reward model (`audited_rewards`): every step the verifier labels `frac`
  # of the batch (chosen by `select`) and the reward model is updated online on them.
  c.reward.audit = mlc.ConfigDict()
  c.reward.audit.frac = 0.0  # 0: off; e.g. 0.08 audits 8% of the completions.
  c.reward.audit.select = "confident"  # `confident`, `uncertain` or `random` rows.
  c.reward.audit.updates_per_step = 1
  c.reward.audit.batch_size = 32  # Audited rows first, then replayed labels.
  c.reward.audit.learning_rate = 1e-4

  c.log_every = 1
  c.checkpoint_every = 50
  c.keep_checkpoints = 3
  # Consecutive RL steps whose every optimizer step had non-finite gradients (each one
  # skipped, the parameters left as they were) before the run stops.
  c.max_nonfinite_steps = 3
  return c


def sibling_config(config_file: str, name: str, arg: str | None = None) -> mlc.ConfigDict:
  """`get_config(arg)` of the config file `name` beside `config_file` (a config's
  `__file__`): for an experiment defined as another one with changes."""
  import importlib.util

  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), name)
  spec = importlib.util.spec_from_file_location(f"sibling_config_{name[:-3]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def shrink_to_runlocal(c: mlc.ConfigDict) -> mlc.ConfigDict:
  """The `:runlocal` shrink of a real-scale config (in place): every stage on a CPU in seconds.

  A 1-layer `tiny` model with fresh weights and a tokenizer trained on the data (no
  `init_from`), the task's public files replaced by a generated stand-in in their own
  format (task option `standin`, written under the workdir when the run prepares its data,
  never when the config loads), and 2 RL steps of small batches. Configs then change what
  their algorithm needs (group size, minibatches, the critic's schedule).
  """
  c.total_steps = 2
  c.mesh_shape = (-1, 1, 1)
  c.model.preset = "tiny"
  c.model.init_from = ""
  c.model.overrides = mlc.ConfigDict({"num_layers": 1})
  # What the tiny stand-in corpus supports (the model rounds its vocabulary up to 128 and
  # masks the padding ids).
  c.tokenizer.path = ""
  c.tokenizer.vocab_size = 384
  c.task.options = mlc.ConfigDict({"standin": True})
  c.task.max_prompt_len = 96  # The MATH-style template adds a line to each question.
  c.rollout.prompts_per_step = 8
  c.rollout.max_new_tokens = 12
  c.verifier.workers = 2
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 0
  c.optim.grad_accum_steps = 1
  c.eval.every = 0
  c.eval.num_examples = 8
  c.eval.batch_size = 8
  c.eval.k = 2
  c.checkpoint_every = 1
  return c


def declared_hparams(registry: Registry) -> mlc.ConfigDict:
  """{name: {hyperparameter: default}} for every entry of `registry`, as config sections.

  A default of None becomes a typed placeholder (from the annotation), so the command line
  can still set it (`--config.algo.loss_hparams.ppo_clip.dual_clip_c=3.0`).
  """
  sections = mlc.ConfigDict()
  for name in registry.names():
    hints = typing.get_type_hints(registry.get(name))
    section = mlc.ConfigDict()
    for key, default in registry.hparams(name).items():
      if default is None:
        kinds = [t for t in typing.get_args(hints.get(key)) if t is not type(None)]
        default = mlc.config_dict.placeholder(kinds[0] if len(kinds) == 1 else object)
      section[key] = default
    sections[name] = section
  return sections


def chosen_hparams(section: mlc.ConfigDict, name: str) -> tuple[tuple[str, object], ...]:
  """The (hyperparameter, value) pairs of `name`'s section (empty if it has none), sorted."""
  if name not in section:
    return ()
  return tuple(sorted(section[name].to_dict().items()))


def needs_ref(c: mlc.ConfigDict) -> bool:
  """Whether the run keeps a frozen copy of the initial policy: for a KL term in the loss or
  reward, and whenever a learned reward trains (`kl_from_init`, the x-axis of Gao et al.'s
  overoptimisation curves, is then logged every step)."""
  return (c.algo.kl_coef > 0 and c.algo.kl_placement != "none") or learned_reward(c)


def learned_reward(c: mlc.ConfigDict) -> bool:
  """Whether a reward model (given, or trained at the start of the run) trains the policy."""
  return bool(c.reward.rm_dir) or c.reward.bootstrap.problems > 0


def _fail(field: str, problem: str, fix: str) -> None:
  raise ValueError(f"config.{field} {problem}; {fix}.")


def validate(c: mlc.ConfigDict, mesh=None) -> None:
  """Checks `c` (and its fit to `mesh`, if given) before any compilation.

  Raises:
    ValueError: one sentence naming the field and the fix.
  """
  _validate_choices(c)
  _validate_sizes(c)
  _validate_optimizers(c)
  _validate_reward(c)
  _validate_algorithm(c)
  if mesh is not None:
    _validate_mesh_fit(c, mesh.shape["data"] * mesh.shape["fsdp"])


def _check_choice(field: str, value: str, known: list[str] | tuple[str, ...]) -> None:
  if value not in known:
    _fail(field, f"is {value!r}, unknown", f"choose one of {list(known)}")


def _validate_choices(c: mlc.ConfigDict) -> None:
  """Every field that names a registered choice names a known one."""
  from jaxrl_verify.data import tasks
  from jaxrl_verify.models import config as model_config
  from jaxrl_verify.rl import kl

  if not c.model.init_from and c.model.preset not in model_config.PRESETS:
    _fail(
      "model.preset",
      f"is {c.model.preset!r}, unknown",
      f"choose one of {sorted(model_config.PRESETS)} or set model.init_from",
    )
  if c.model.init_from and not os.path.isdir(c.model.init_from):
    _fail(
      "model.init_from",
      f"is {c.model.init_from!r}, which is not a directory",
      "point it at the output of `python -m jaxrl_verify.models.import_hf`",
    )
  _check_choice("task.name", c.task.name, tasks.task_names())
  _check_choice("algo.advantage", c.algo.advantage, advantages.ADVANTAGES.names())
  _check_choice("algo.policy_loss", c.algo.policy_loss, losses.POLICY_LOSSES.names())
  _check_choice("algo.aggregation", c.algo.aggregation, losses.AGGREGATIONS.names())
  _check_choice("algo.kl_estimator", c.algo.kl_estimator, kl.KL_ESTIMATORS.names())
  _check_choice("algo.kl_placement", c.algo.kl_placement, KL_PLACEMENTS)
  _check_choice("verifier.failure_policy", c.verifier.failure_policy, FAILURE_POLICIES)


def _validate_sizes(c: mlc.ConfigDict) -> None:
  """Counts are positive, ranges hold, and the update's splits divide the batch."""
  for field in (
    "total_steps",
    "rollout.prompts_per_step",
    "rollout.group_size",
    "rollout.max_new_tokens",
    "task.max_prompt_len",
    "ppo.epochs",
    "ppo.minibatches",
    "optim.grad_accum_steps",
    "eval.batch_size",
    "eval.k",
    "max_nonfinite_steps",
  ):
    value = c
    for name in field.split("."):
      value = value[name]
    if value < 1:
      _fail(field, f"is {value}", "set it to at least 1")
  if c.eval.red_team_problems < 0:
    _fail("eval.red_team_problems", f"is {c.eval.red_team_problems}", "set it to 0 (off) or more")
  if c.sft.steps < 0 or not 0.0 <= c.sft.box_noise <= 1.0:
    _fail("sft", "has steps < 0 or box_noise outside [0, 1]", "fix sft.steps / sft.box_noise")
  if c.rollout.temperature < 0:
    _fail("rollout.temperature", "is negative", "use 0 for greedy or a positive value")
  if not 0 < c.rollout.top_p <= 1:
    _fail("rollout.top_p", f"is {c.rollout.top_p}", "use a value in (0, 1]")
  g = c.rollout.prompts_per_step * c.rollout.group_size
  parts = c.ppo.minibatches * c.optim.grad_accum_steps
  if g % parts:
    _fail(
      "ppo.minibatches",
      f"x optim.grad_accum_steps = {parts} does not divide the {g} generations per step",
      "pick values whose product divides it",
    )


def _validate_optimizers(c: mlc.ConfigDict) -> None:
  """Learning rates and optimizer constants are in range; periods are not negative."""
  for field in ("optim.learning_rate", "value.learning_rate", "sft.learning_rate"):
    section, name = field.split(".")
    if not c[section][name] > 0:
      _fail(field, f"is {c[section][name]}", "set a positive learning rate")
  o = c.optim
  if o.grad_clip is not None and o.grad_clip < 0:
    _fail("optim.grad_clip", f"is {o.grad_clip}", "use a positive norm, or 0/None for no clipping")
  if not 0.0 <= o.min_lr_ratio <= 1.0:
    _fail("optim.min_lr_ratio", f"is {o.min_lr_ratio}", "use a value in [0, 1]")
  if o.weight_decay < 0:
    _fail("optim.weight_decay", f"is {o.weight_decay}", "use 0 or a positive value")
  for name in ("b1", "b2"):
    if not 0.0 <= o[name] < 1.0:
      _fail(f"optim.{name}", f"is {o[name]}", "use a value in [0, 1), e.g. 0.9 / 0.999")
  for field in ("optim.warmup_steps", "value.warmup_steps", "eval.every", "checkpoint_every"):
    section, _, name = field.rpartition(".")
    value = c[section][name] if section else c[name]
    if value < 0:
      _fail(field, f"is {value}", "use 0 (off) or a positive number of steps")
  if c.log_every < 1:
    _fail("log_every", f"is {c.log_every}", "set it to at least 1")
  if c.keep_checkpoints is not None and c.keep_checkpoints < 1:
    _fail("keep_checkpoints", f"is {c.keep_checkpoints}", "keep at least 1 (or None: all)")


def _validate_reward(c: mlc.ConfigDict) -> None:
  """A learned reward names a reward-model run, a known aggregate and a usable mixture."""
  r = c.reward
  if r.bootstrap.problems < 0 or not 0 < r.bootstrap.test_frac < 1:
    _fail(
      "reward.bootstrap",
      f"has problems={r.bootstrap.problems}, test_frac={r.bootstrap.test_frac}",
      "use problems >= 0 (0: off) and test_frac in (0, 1)",
    )
  if r.rm_dir and r.bootstrap.problems:
    _fail(
      "reward.rm_dir",
      f"is {r.rm_dir!r} and reward.bootstrap.problems is {r.bootstrap.problems}",
      "give a trained reward model or have one trained at the start, not both",
    )
  if r.independent.problems and not learned_reward(c):
    _fail(
      "reward.independent.problems",
      f"is {r.independent.problems}",
      "an independent reward model judges a learned one: set reward.rm_dir or "
      "reward.bootstrap.problems too",
    )
  if r.placement != "outcome" and not learned_reward(c):
    _fail(
      "reward.placement",
      f"is {r.placement!r}",
      "step rewards come from a PRM: set reward.rm_dir or reward.bootstrap (kind='prm')",
    )
  if r.audit.frac and not learned_reward(c):
    _fail("reward.audit.frac", f"is {r.audit.frac}", "audit a learned reward (set reward.rm_dir)")
  if not learned_reward(c):
    return
  if not 0 <= r.audit.frac <= 1 or r.audit.updates_per_step < 1 or r.audit.batch_size < 1:
    _fail(
      "reward.audit",
      f"has frac={r.audit.frac}, updates_per_step={r.audit.updates_per_step}, "
      f"batch_size={r.audit.batch_size}",
      "use frac in [0, 1] and positive updates_per_step and batch_size",
    )
  _check_choice("reward.audit.select", r.audit.select, ("confident", "uncertain", "random"))
  if r.rm_dir and not os.path.isdir(os.path.join(r.rm_dir, "checkpoints")):
    _fail(
      "reward.rm_dir",
      f"is {r.rm_dir!r}, which holds no checkpoints/",
      "pass the --workdir of a `python -m jaxrl_verify.process.train_rm` run",
    )
  _check_choice("reward.rm_aggregate", r.rm_aggregate, ("min", "product", "last"))
  _check_choice("reward.placement", r.placement, ("outcome", "steps"))
  _check_choice("reward.ensemble.combine", r.ensemble.combine, ("judge", "min", "mean_std"))
  if r.independent.problems and r.placement == "steps":
    _fail(
      "reward.independent.problems",
      f"is {r.independent.problems} with reward.placement='steps'",
      "judges score whole completions: use placement='outcome' or drop the judge",
    )
  _check_choice("reward.bootstrap.kind", r.bootstrap.kind, ("orm", "prm"))
  if r.bootstrap.label.num_rollouts < 1 or r.bootstrap.label.prefixes_per_call < 1:
    _fail(
      "reward.bootstrap.label",
      f"has num_rollouts={r.bootstrap.label.num_rollouts}, "
      f"prefixes_per_call={r.bootstrap.label.prefixes_per_call}",
      "use at least 1 of each",
    )
  if r.placement == "steps" and c.algo.advantage in GROUP_ESTIMATORS:
    _fail(
      "reward.placement",
      f"is 'steps' but {c.algo.advantage} uses outcome rewards only",
      "use algo.advantage='grpo_process' (or gae / reinforce_pp), or placement='outcome'",
    )
  if r.rm_weight < 0 or r.verifier_weight < 0 or r.rm_weight + r.verifier_weight == 0:
    _fail(
      "reward.rm_weight",
      f"and reward.verifier_weight are {r.rm_weight} and {r.verifier_weight}",
      "use non-negative weights, not both 0",
    )


def _validate_algorithm(c: mlc.ConfigDict) -> None:
  """The estimator, loss and their hyperparameters fit together."""
  a = c.algo
  for registry, name, section in (
    (advantages.ADVANTAGES, a.advantage, "advantage_hparams"),
    (losses.POLICY_LOSSES, a.policy_loss, "loss_hparams"),
  ):
    try:
      registry.bind(name, dict(chosen_hparams(a[section], name)))
    except ValueError as e:
      _fail(f"algo.{section}.{name}", f"does not fit ({e})", "use the declared names")
  dual_clip_c = a.loss_hparams.ppo_clip.dual_clip_c
  if a.policy_loss == "ppo_clip" and dual_clip_c is not None and dual_clip_c <= 1.0:
    _fail(
      "algo.loss_hparams.ppo_clip.dual_clip_c",
      f"is {dual_clip_c}",
      "set it above 1 (typically 3) or leave it unset (off)",
    )
  if a.advantage in GROUP_ESTIMATORS + ("reinforce_pp",) and c.rollout.group_size < 2:
    _fail(
      "rollout.group_size",
      f"is {c.rollout.group_size} but {a.advantage} compares samples within a group",
      "set it to at least 2",
    )
  if a.advantage == "grpo_process" and not (learned_reward(c) and c.reward.placement == "steps"):
    _fail(
      "algo.advantage",
      "is 'grpo_process', which needs step rewards",
      "train against a PRM with reward.placement='steps' (reward.rm_dir or reward.bootstrap "
      "with kind='prm'), or use 'grpo'",
    )
  if a.kl_placement == "reward" and a.kl_coef > 0 and a.advantage in GROUP_ESTIMATORS:
    _fail(
      "algo.kl_placement",
      f"is 'reward' but {a.advantage} uses outcome rewards only",
      "put the KL in the loss (kl_placement='loss') or use gae/reinforce_pp",
    )
  if a.dynamic_sampling:
    if a.advantage not in GROUP_ESTIMATORS:
      _fail(
        "algo.dynamic_sampling",
        f"needs a group estimator ({', '.join(GROUP_ESTIMATORS)}), not {a.advantage}",
        "turn it off or change algo.advantage",
      )
    if a.max_resample_rounds < 1:
      _fail("algo.max_resample_rounds", f"is {a.max_resample_rounds}", "set it >= 1")


def _validate_mesh_fit(c: mlc.ConfigDict, batch_devices: int) -> None:
  """Every batch the run shards divides over the data x fsdp devices."""
  g = c.rollout.prompts_per_step * c.rollout.group_size
  parts = c.ppo.minibatches * c.optim.grad_accum_steps
  if c.rollout.prompts_per_step % batch_devices:
    _fail(
      "rollout.prompts_per_step",
      f"({c.rollout.prompts_per_step}) is not divisible by the "
      f"data x fsdp mesh size ({batch_devices})",
      "change it or config.mesh_shape",
    )
  if (g // parts) % batch_devices:
    _fail(
      "ppo.minibatches",
      f"gives microbatches of {g // parts} generations, not divisible "
      f"by the data x fsdp mesh size ({batch_devices})",
      "use fewer minibatches/accumulation steps or a smaller mesh",
    )
  if c.eval.batch_size % batch_devices:
    _fail(
      "eval.batch_size",
      f"({c.eval.batch_size}) is not divisible by the data x fsdp mesh size ({batch_devices})",
      "change it",
    )
  # pass@k samples k completions for each of batch_size // k prompts at a time.
  sampled_rows = max(c.eval.batch_size // c.eval.k, 1) * c.eval.k
  if c.eval.k > 1 and sampled_rows % batch_devices:
    _fail(
      "eval.k",
      f"({c.eval.k}) with eval.batch_size {c.eval.batch_size} samples batches of "
      f"{sampled_rows}, not divisible by the data x fsdp mesh size ({batch_devices})",
      "pick eval.k dividing eval.batch_size",
    )
  if c.sft.steps and c.sft.batch_size % batch_devices:
    _fail(
      "sft.batch_size",
      f"({c.sft.batch_size}) is not divisible by the data x fsdp mesh size ({batch_devices})",
      "change it",
    )


def check_workdir(workdir: str) -> None:
  """The workdir is a local (or mounted) directory that exists or can be created, writable.

  Object-store URLs are refused: metrics.jsonl is appended to, which GCS objects do
  not support. On a TPU pod, mount the bucket on every host (Cloud Storage FUSE) and
  pass the mount path, so all hosts share the workdir and checkpoints land in the bucket.
  """
  if "://" in workdir:
    raise ValueError(
      f"--workdir {workdir!r} is an object-store URL; mount the bucket on every host "
      "(e.g. `gcsfuse --implicit-dirs BUCKET /mnt/BUCKET`) and pass --workdir=/mnt/BUCKET/RUN."
    )
  try:
    os.makedirs(workdir, exist_ok=True)
    # A uniquely named probe: every process of a multi-host run checks the same workdir
    # at once, and one fixed name would let one process delete another's probe.
    with tempfile.TemporaryFile(dir=workdir) as probe:
      probe.write(b"ok")
  except OSError as e:
    raise ValueError(
      f"--workdir {workdir!r} cannot be written ({e.strerror}); pick a writable directory."
    ) from None
