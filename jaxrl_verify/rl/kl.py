"""Per-token KL estimators to a reference policy, and the two ways to use them.

Schulman, "Approximating KL Divergence" (2020): with tokens sampled from the
policy p and r = p_ref(y) / p(y), i.e. log r = ref_logp - logp, each estimator
below has expectation KL(p || p_ref) (k2 only approximately):

  k1 = -log r                 unbiased, high variance, can be negative
  k2 = 0.5 (log r)^2          low variance, biased
  k3 = (r - 1) - log r        unbiased, low variance, always >= 0

Use them either as a reward (`kl_penalty_rewards`, e.g. k1 for PPO/REINFORCE++:
the penalty flows through the advantages) or as a loss term (`kl_loss`, e.g. k3
for GRPO: the penalty is differentiated directly).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl_verify.registry import Registry
from jaxrl_verify.rl import losses

KL_ESTIMATORS: Registry = Registry("KL estimator")


def _log_r(logp_gt, ref_logp_gt, mask_gt):
  log_r = jnp.asarray(ref_logp_gt, jnp.float32) - jnp.asarray(logp_gt, jnp.float32)
  if mask_gt is None:
    return log_r, None
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  # Zero on padding so exp() below never sees garbage logprobs.
  return jnp.where(mask_gt > 0, log_r, 0.0), mask_gt


def _masked(x_gt, mask_gt):
  return x_gt if mask_gt is None else x_gt * mask_gt


@KL_ESTIMATORS.register("k1")
def k1(logp_gt, ref_logp_gt, mask_gt=None) -> jax.Array:
  """k1 = -log r = logp - ref_logp per token; 0 where masked."""
  log_r, mask_gt = _log_r(logp_gt, ref_logp_gt, mask_gt)
  return _masked(-log_r, mask_gt)


@KL_ESTIMATORS.register("k2")
def k2(logp_gt, ref_logp_gt, mask_gt=None) -> jax.Array:
  """k2 = 0.5 (log r)^2 per token; 0 where masked."""
  log_r, mask_gt = _log_r(logp_gt, ref_logp_gt, mask_gt)
  return _masked(0.5 * jnp.square(log_r), mask_gt)


@KL_ESTIMATORS.register("k3")
def k3(logp_gt, ref_logp_gt, mask_gt=None) -> jax.Array:
  """k3 = exp(log r) - 1 - log r per token (>= 0); 0 where masked.

  Computed as expm1(log r) - log r to keep precision when log r is small.
  """
  log_r, mask_gt = _log_r(logp_gt, ref_logp_gt, mask_gt)
  return _masked(jnp.expm1(log_r) - log_r, mask_gt)


def _clamp(kl_gt, clamp: float | None):
  # k3 grows like exp(log r); a clamp (verl uses 10) keeps one rare token from dominating.
  return kl_gt if clamp is None else jnp.clip(kl_gt, -clamp, clamp)


def kl_penalty_rewards(
  logp_gt, ref_logp_gt, mask_gt, *, beta: float, estimator: str = "k1", clamp: float | None = None
) -> jax.Array:
  """token_reward_gt = -beta * clip(kl_t, -clamp, clamp) (no gradient), 0 where masked.

  For `AdvantageInputs.token_reward_gt`. `logp_gt` is the sampling policy's
  logprob of each token (the old policy), so the penalty is a fixed reward of the
  rollout, as in InstructGPT-style PPO.
  """
  kl_gt = _clamp(KL_ESTIMATORS.get(estimator)(logp_gt, ref_logp_gt, mask_gt), clamp)
  return jax.lax.stop_gradient(-beta * kl_gt)


def kl_loss(
  logp_gt,
  ref_logp_gt,
  mask_gt,
  *,
  estimator: str = "k3",
  clamp: float | None = None,
  aggregation: str = "token_mean",
  num_tokens=None,
  num_seqs=None,
  max_len=None,
) -> jax.Array:
  """aggregation(clip(kl_t, -clamp, clamp), mask): add to the loss as beta * kl_loss(...).

  `logp_gt` is the current policy's logprob (differentiated); `ref_logp_gt` the
  frozen reference's. Normalisers as in `losses.AGGREGATIONS`.
  """
  kl_fn = KL_ESTIMATORS.get(estimator)
  kl_gt = _clamp(kl_fn(logp_gt, jax.lax.stop_gradient(ref_logp_gt), mask_gt), clamp)
  return losses.aggregate(
    aggregation, kl_gt, mask_gt, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len
  )
