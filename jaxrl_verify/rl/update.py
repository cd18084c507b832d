"""The jitted RL update: PPO epochs over minibatches, with gradient accumulation.

`TrainState` holds everything that changes during RL (both models, both optimizer
states, the frozen reference policy, the step and the RNG); `make_update_fn`
returns one pure function `update(state, batch) -> (state, metrics)` to be jitted
with the state donated. Losses are normalised by the token/sequence counts of the
whole minibatch (`losses.batch_counts`), so gradient accumulation and sharding
never change the loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from jaxrl_verify.models import scoring
from jaxrl_verify.rl import kl, losses


@struct.dataclass
class TrainState:
  """The full RL state (all device arrays; checkpointed as one pytree).

  Attributes:
    step: int32 [] completed RL iterations.
    policy: NNX parameter state of the policy.
    policy_opt: optax state of the policy optimizer.
    ref: NNX parameter state of the frozen reference policy (None without KL).
    value: NNX parameter state of the value model (None for critic-free estimators).
    value_opt: optax state of the value optimizer (None without a value model).
    rng: uint32 [2] raw PRNG key, split once per iteration.
  """

  step: jax.Array
  policy: Any
  policy_opt: Any
  ref: Any
  value: Any
  value_opt: Any
  rng: jax.Array


@struct.dataclass
class TrainBatch:
  """One iteration's experience, one row per generation (device arrays).

  Attributes:
    prompt_gp: int32 [g, p] left-padded prompt tokens.
    prompt_mask_gp: bool [g, p] real prompt tokens.
    completion_gt: int32 [g, t] sampled tokens.
    completion_mask_gt: bool [g, t] real generated tokens (what the model attends to).
    mask_gt: float32 [g, t] tokens that carry loss: real, and from a trusted verdict.
    logp_old_gt: float32 [g, t] logprobs of the policy that sampled (the sampler's).
    sample_logp_gt: float32 [g, t] logprobs under the distribution actually sampled.
    ref_logp_gt: float32 [g, t] reference-policy logprobs (zeros without KL).
    advantages_gt: float32 [g, t].
    returns_gt: float32 [g, t] value targets (zeros without a critic).
    values_old_gt: float32 [g, t] critic values at sampling time (zeros without).
  """

  prompt_gp: jax.Array
  prompt_mask_gp: jax.Array
  completion_gt: jax.Array
  completion_mask_gt: jax.Array
  mask_gt: jax.Array
  logp_old_gt: jax.Array
  sample_logp_gt: jax.Array
  ref_logp_gt: jax.Array
  advantages_gt: jax.Array
  returns_gt: jax.Array
  values_old_gt: jax.Array


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Static hyperparameters of the update (hashable: part of the jit cache key).

  `config_lib.loss_config(config)` builds it from an experiment config.

  Attributes:
    policy_loss: a `losses.POLICY_LOSSES` name (`ppo_clip`, `pg`).
    policy_loss_hparams: (name, value) pairs for it, checked against what it declares
      (`POLICY_LOSSES.hparams(policy_loss)`, e.g. `eps_low`, `eps_high`, `dual_clip_c`).
    aggregation: a `losses.AGGREGATIONS` name; also used by the value loss.
    entropy_coef: weight of the token-mean entropy bonus.
    kl_coef: weight of the KL-to-reference term when `kl_in_loss`.
    kl_estimator: a `kl.KL_ESTIMATORS` name (`k1`, `k2`, `k3`).
    kl_in_loss: add `kl_coef * KL(pi || ref)` to the policy loss.
    has_ref: the batch carries reference logprobs (logged `kl` is then to the reference;
      without, it is the drift from the sampling policy).
    tis_cap: truncated importance sampling cap on pi_old / pi_sample; None: off.
    value_coef: weight of the value loss.
    value_clip_eps: PPO value clipping range; None: unclipped.
    epochs: passes over the batch per iteration.
    minibatches: optimizer steps per epoch (the batch split strided).
    grad_accum_steps: microbatches per optimizer step (gradients summed).
    critic_warmup_steps: iterations that train only the critic.
    prompt_repeats: consecutive rows of one (micro)batch sharing a prompt (see
      `scoring.completion_logprobs`); `prompt_repeats_for` derives it from the group
      layout. 1 encodes every row's prompt.
  """

  policy_loss: str = "ppo_clip"
  policy_loss_hparams: tuple[tuple[str, Any], ...] = ()
  aggregation: str = "token_mean"
  entropy_coef: float = 0.0
  kl_coef: float = 0.0
  kl_estimator: str = "k3"
  kl_in_loss: bool = False
  has_ref: bool = False
  tis_cap: float | None = None
  value_coef: float = 1.0
  value_clip_eps: float | None = 0.2
  epochs: int = 1
  minibatches: int = 1
  grad_accum_steps: int = 1
  critic_warmup_steps: int = 0
  prompt_repeats: int = 1


def prompt_repeats_for(group_size: int, minibatches: int, grad_accum_steps: int) -> int:
  """Rows per prompt in each microbatch the update sees: `_split`'s strided parts keep a
  group's rows together, `group_size / (minibatches x grad_accum_steps)` of them, when
  that divides; otherwise 1 (every row encodes its own prompt)."""
  parts = minibatches * grad_accum_steps
  return group_size // parts if group_size % parts == 0 else 1


def make_optimizer(
  learning_rate: float,
  *,
  total_steps: int,
  warmup_steps: int = 0,
  min_lr_ratio: float = 0.1,
  weight_decay: float = 0.0,
  b1: float = 0.9,
  b2: float = 0.999,
  grad_clip: float | None = 1.0,
  steps_per_iteration: int = 1,
) -> optax.GradientTransformation:
  """AdamW with linear warm-up then cosine decay, global-norm clipping, and a guard
  that skips (and counts) updates whose gradients are not finite."""
  updates = max(total_steps * steps_per_iteration, 1)
  warmup = warmup_steps * steps_per_iteration
  schedule = optax.warmup_cosine_decay_schedule(
    init_value=0.0 if warmup else learning_rate,
    peak_value=learning_rate,
    warmup_steps=warmup,
    decay_steps=max(updates, warmup + 1),
    end_value=learning_rate * min_lr_ratio,
  )
  chain = [optax.clip_by_global_norm(grad_clip)] if grad_clip else []
  chain.append(optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay))
  return optax.apply_if_finite(optax.chain(*chain), max_consecutive_errors=1_000_000)


def _split(batch: TrainBatch, parts: int) -> TrainBatch:
  """[g, ...] -> [parts, g / parts, ...], strided: part j holds rows j, j + parts, ...

  With the batch sharded over devices along g, a strided split keeps every part's
  rows on the devices that already hold them (a contiguous split would gather).
  Advantages are computed before the split. A group's G consecutive rows stay
  consecutive in every part (G / parts of them when parts divides G), which lets the
  forward encode their shared prompt once (`prompt_repeats_for`).
  """
  return jax.tree.map(
    lambda x: jnp.swapaxes(x.reshape(x.shape[0] // parts, parts, *x.shape[1:]), 0, 1), batch
  )


def _token_mean(x_gt, mask_gt) -> jax.Array:
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  return (x_gt * mask_gt).sum() / jnp.maximum(mask_gt.sum(), 1.0)


def _accumulate(loss_fn, params, batch: TrainBatch, steps: int):
  """Sum of gradients (and metrics) of `loss_fn` over `steps` microbatches.

  Each microbatch loss is normalised by the counts of the whole batch, so the sum
  of microbatch losses is the batch loss and the summed gradient is its gradient.
  """
  counts = losses.batch_counts(batch.mask_gt)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if steps == 1:
    (_, metrics), grads = grad_fn(params, batch, counts)
    return grads, metrics

  def body(carry, micro):
    grads_acc, metrics_acc = carry
    (_, metrics), grads = grad_fn(params, micro, counts)
    return (
      jax.tree.map(jnp.add, grads_acc, grads),
      jax.tree.map(jnp.add, metrics_acc, metrics),
    ), None

  micro = _split(batch, steps)
  first = jax.tree.map(lambda x: x[0], micro)
  (_, metrics0), grads0 = grad_fn(params, first, counts)
  rest = jax.tree.map(lambda x: x[1:], micro)
  (grads, metrics), _ = jax.lax.scan(body, (grads0, metrics0), rest)
  # Loss-like metrics add up over microbatches; rate-like ones are averaged.
  metrics = {k: v if k.startswith("loss") else v / steps for k, v in metrics.items()}
  return grads, metrics


def make_update_fn(
  policy_graphdef,
  value_graphdef,
  policy_tx: optax.GradientTransformation,
  value_tx: optax.GradientTransformation | None,
  cfg: LossConfig,
):
  """Returns `update(state, batch) -> (state, metrics)`; jit it with `donate_argnums=0`.

  One update = `cfg.epochs` passes over `cfg.minibatches` strided minibatches; each
  minibatch is one optimizer step of the policy (`policy_loss_fn`) and, with a critic,
  of the value model (`value_loss_fn`), its gradient summed over `cfg.grad_accum_steps`
  microbatches.
  """
  policy_loss = policy_loss_fn(policy_graphdef, cfg)
  value_loss = value_loss_fn(value_graphdef, cfg) if value_tx is not None else None

  def apply(tx, params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, optax.global_norm(grads)

  def minibatch_step(state: TrainState, mb: TrainBatch):
    metrics = {}
    train_policy = state.step >= cfg.critic_warmup_steps
    grads, m = _accumulate(policy_loss, state.policy, mb, cfg.grad_accum_steps)
    policy, policy_opt, gnorm = apply(policy_tx, state.policy, state.policy_opt, grads)
    # During critic warm-up the policy is left untouched (and its optimizer too).
    policy, policy_opt = jax.tree.map(
      lambda new, old: jnp.where(train_policy, new, old),
      (policy, policy_opt),
      (state.policy, state.policy_opt),
    )
    metrics.update(m, **{"grad_norm/policy": gnorm})
    value, value_opt = state.value, state.value_opt
    if value_loss is not None:
      vgrads, vm = _accumulate(value_loss, state.value, mb, cfg.grad_accum_steps)
      value, value_opt, vnorm = apply(value_tx, state.value, state.value_opt, vgrads)
      metrics.update(vm, **{"grad_norm/value": vnorm})
    state = state.replace(policy=policy, policy_opt=policy_opt, value=value, value_opt=value_opt)
    return state, metrics

  def update(state: TrainState, batch: TrainBatch):
    g = batch.mask_gt.shape[0]
    if g % (cfg.minibatches * cfg.grad_accum_steps):
      raise ValueError(
        f"{g} generations per step are not divisible by ppo.minibatches x "
        f"optim.grad_accum_steps = {cfg.minibatches * cfg.grad_accum_steps}; change one of them."
      )
    minibatches = _split(batch, cfg.minibatches)
    order = jnp.tile(jnp.arange(cfg.minibatches), cfg.epochs)

    def body(state, i):
      mb = jax.tree.map(lambda x: x[i], minibatches)
      return minibatch_step(state, mb)

    skipped_before = _notfinite_count(state.policy_opt)
    state, metrics = jax.lax.scan(body, state, order)
    # A skipped optimizer step's loss is non-finite: averaged in, it would hide the others.
    metrics = jax.tree.map(_finite_mean, metrics)
    total = _notfinite_count(state.policy_opt)
    metrics["update/skipped_nonfinite"] = total - skipped_before
    metrics["update/skipped_nonfinite_total"] = total
    metrics["update/optimizer_steps"] = jnp.float32(order.shape[0])
    return state.replace(step=state.step + 1), metrics

  return update


def policy_loss_fn(graphdef, cfg: LossConfig):
  """`loss(params, minibatch, counts) -> (loss, metrics)` of the policy: the registered
  surrogate (`cfg.policy_loss`), minus the entropy bonus, plus the KL to the reference
  when `cfg.kl_in_loss`. Normalised by the whole minibatch's `counts`."""
  surrogate = losses.POLICY_LOSSES.bind(cfg.policy_loss, dict(cfg.policy_loss_hparams))

  def policy_loss(params, mb: TrainBatch, counts):
    model = nnx.merge(graphdef, params)
    logp_gt, entropy_gt = scoring.completion_logprobs(
      model,
      mb.prompt_gp,
      mb.prompt_mask_gp,
      mb.completion_gt,
      mb.completion_mask_gt,
      return_entropy=True,
      prompt_repeats=cfg.prompt_repeats,
    )
    norm = dict(counts, max_len=mb.mask_gt.shape[1])
    tis = None
    if cfg.tis_cap:
      tis = losses.tis_weights(mb.logp_old_gt, mb.sample_logp_gt, mb.mask_gt, cap=cfg.tis_cap)
    pg_loss, metrics = surrogate(
      logp_gt,
      mb.logp_old_gt,
      mb.advantages_gt,
      mb.mask_gt,
      tis_weight_gt=tis,
      aggregation=cfg.aggregation,
      **norm,
    )
    # Loss terms are normalised by the whole minibatch's counts (they add up over
    # microbatches); the logged `entropy` and `kl` are this microbatch's token means.
    global_tokens = counts["num_tokens"]
    loss = pg_loss - cfg.entropy_coef * losses.aggregate(
      "token_mean", entropy_gt, mb.mask_gt, num_tokens=global_tokens
    )
    if cfg.has_ref:
      kl_gt = kl.KL_ESTIMATORS.get(cfg.kl_estimator)(logp_gt, mb.ref_logp_gt, mb.mask_gt)
      if cfg.kl_in_loss:
        loss = loss + cfg.kl_coef * kl.kl_loss(
          logp_gt,
          mb.ref_logp_gt,
          mb.mask_gt,
          estimator=cfg.kl_estimator,
          aggregation="token_mean",
          num_tokens=global_tokens,
        )
      kl_value = _token_mean(kl_gt, mb.mask_gt)
    else:
      # Without a reference model, `kl` reports the drift from the sampling policy.
      kl_value = metrics["approx_kl"]
    metrics = {f"policy/{k}": v for k, v in metrics.items()}
    metrics.update(
      {
        "loss/policy": loss,
        "loss/pg": pg_loss,
        "entropy": _token_mean(entropy_gt, mb.mask_gt),
        "kl": jax.lax.stop_gradient(kl_value),
      }
    )
    return loss, metrics

  return policy_loss


def value_loss_fn(graphdef, cfg: LossConfig):
  """`loss(params, minibatch, counts) -> (loss, metrics)` of the critic: `cfg.value_coef`
  times the (clipped) value loss against the batch's returns."""

  def value_loss(params, mb: TrainBatch, counts):
    model = nnx.merge(graphdef, params)
    values_gt = critic_values(
      model,
      mb.prompt_gp,
      mb.prompt_mask_gp,
      mb.completion_gt,
      mb.completion_mask_gt,
      prompt_repeats=cfg.prompt_repeats,
    )
    loss, metrics = losses.value_loss(
      values_gt,
      mb.values_old_gt,
      mb.returns_gt,
      mb.mask_gt,
      clip_eps=cfg.value_clip_eps,
      aggregation=cfg.aggregation,
      max_len=mb.mask_gt.shape[1],
      **counts,
    )
    metrics = {f"value/{k}": v for k, v in metrics.items()}
    metrics["loss/value"] = loss
    return cfg.value_coef * loss, metrics

  return value_loss


def _finite_mean(x: jax.Array) -> jax.Array:
  """Mean over the finite entries (NaN when there are none)."""
  finite = jnp.isfinite(x)
  return jnp.where(finite, x, 0.0).sum() / jnp.where(finite.any(), finite.sum(), jnp.nan)


def _notfinite_count(opt_state) -> jax.Array:
  """Optimizer steps skipped so far for non-finite gradients (optax.apply_if_finite: the
  parameters and the moments are left as they were)."""
  return jnp.asarray(opt_state.total_notfinite, jnp.float32)


def critic_values(
  value_model, prompt_gp, prompt_mask_gp, completion_gt, completion_mask_gt, prompt_repeats=1
):
  """float32 [g, t] V(s_t): the value of the state before completion token t is emitted.

  The state before token t ends with the previous token, so values are read from the
  hidden states that predict the completion tokens (`scoring.completion_hidden`, with
  the same `prompt_repeats` contract); 0 where `completion_mask_gt` is False.
  """
  hidden_gtd = scoring.completion_hidden(
    value_model, prompt_gp, prompt_mask_gp, completion_gt, completion_mask_gt, prompt_repeats
  )
  values_gt = value_model.value_head(hidden_gtd)[..., 0].astype(jnp.float32)
  return values_gt * completion_mask_gt
