"""Policy and value losses and loss aggregations (pure jnp).

Per-token logprobs and entropies from logits live in `models/scoring.py`
(`gather_logprobs`, `entropy`).

Aggregations (`AGGREGATIONS`) reduce a per-token quantity x_gt under a mask to a
scalar with explicit, *global* normalisers: `num_tokens` (real tokens in the whole
batch) and `num_seqs` (sequences in the whole batch), defaulting to the local
counts. Passing the global counts makes every aggregation a plain sum over rows,
so the losses of minibatches or shards add up to the full-batch loss however the
batch was split (the trainer computes the counts once per batch, before splitting).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl_verify.registry import Registry

AGGREGATIONS: Registry = Registry("loss aggregation")
# Policy losses share one contract:
#   loss, metrics = POLICY_LOSSES.get(name)(logp_gt, logp_old_gt, advantages_gt, mask_gt, *,
#                                           tis_weight_gt, aggregation, num_tokens, num_seqs,
#                                           max_len, **hparams)
# with `metrics` local masked token means that include `approx_kl` (KL(pi_old || pi), k3).
POLICY_LOSSES: Registry = Registry(
  "policy loss",
  structural=("tis_weight_gt", "aggregation", "num_tokens", "num_seqs", "max_len"),
  how_to_register="@jaxrl_verify.rl.losses.POLICY_LOSSES.register(name)",
)


# ------------------------------------------------------------------ aggregations


def _local_counts(mask_gt):
  len_g = mask_gt.sum(-1)
  return mask_gt.sum(), (len_g > 0).sum().astype(jnp.float32), len_g


@AGGREGATIONS.register("token_mean")
def token_mean(x_gt, mask_gt, *, num_tokens=None, num_seqs=None, max_len=None) -> jax.Array:
  """sum_{g,t} m x / num_tokens; every real token weighs the same (DAPO)."""
  del num_seqs, max_len
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  n = _local_counts(mask_gt)[0] if num_tokens is None else num_tokens
  return (x_gt * mask_gt).sum() / jnp.maximum(n, 1.0)


@AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(
  x_gt, mask_gt, *, num_tokens=None, num_seqs=None, max_len=None
) -> jax.Array:
  """sum_g [sum_t m x / len_g] / num_seqs; every sequence weighs the same (GRPO)."""
  del num_tokens, max_len
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  _, local_seqs, len_g = _local_counts(mask_gt)
  n = local_seqs if num_seqs is None else num_seqs
  per_seq_g = (x_gt * mask_gt).sum(-1) / jnp.maximum(len_g, 1.0)
  return per_seq_g.sum() / jnp.maximum(n, 1.0)


@AGGREGATIONS.register("seq_mean_token_sum")
def seq_mean_token_sum(x_gt, mask_gt, *, num_tokens=None, num_seqs=None, max_len=None) -> jax.Array:
  """sum_{g,t} m x / num_seqs; sum over tokens, mean over sequences."""
  del num_tokens, max_len
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  n = _local_counts(mask_gt)[1] if num_seqs is None else num_seqs
  return (x_gt * mask_gt).sum() / jnp.maximum(n, 1.0)


@AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(
  x_gt, mask_gt, *, num_tokens=None, num_seqs=None, max_len=None
) -> jax.Array:
  """sum_{g,t} m x / (max_len * num_seqs); Dr. GRPO's constant normaliser.

  `max_len` is a constant (the generation budget), defaulting to the t axis size.
  """
  del num_tokens
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  n = _local_counts(mask_gt)[1] if num_seqs is None else num_seqs
  max_len = mask_gt.shape[-1] if max_len is None else max_len
  return (x_gt * mask_gt).sum() / (jnp.maximum(n, 1.0) * max_len)


def aggregate(name: str, x_gt, mask_gt, **normalisers) -> jax.Array:
  """`AGGREGATIONS.get(name)(x_gt, mask_gt, **normalisers)`."""
  return AGGREGATIONS.get(name)(x_gt, mask_gt, **normalisers)


def batch_counts(mask_gt) -> dict[str, jax.Array]:
  """Global normalisers of a full batch: {num_tokens, num_seqs}; pass them to each split."""
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  n_tok, n_seq, _ = _local_counts(mask_gt)
  return {"num_tokens": n_tok, "num_seqs": n_seq}


# ------------------------------------------------------------------ losses


def tis_weights(logp_old_gt, sample_logp_gt, mask_gt, *, cap: float = 2.0) -> jax.Array:
  """Truncated importance weights w_t = min(exp(logp_old_t - logp_sampler_t), cap), no gradient.

  Corrects the gap between the distribution the tokens were drawn from and the old
  policy in the PPO ratio (Yao et al. 2025, "Your Efficient RL Framework Secretly
  Brings You Off-Policy RL Training"):
    logp_old_gt: the old policy's logprobs of the sampled tokens (the PPO ratio's
      denominator). The trainer reuses the sampler's policy logprobs
      (`Rollout.logp_gt`, raw softmax): in fp32 they equal teacher-forced ones
      (a CI test holds this), so the weights correct what the sampler changed on
      purpose (temperature, top-k, top-p). With bf16 sampling, recompute them
      teacher-forced to also correct the numerical mismatch.
    sample_logp_gt: what the sampler recorded for the distribution it actually
      drew from (`Rollout.sample_logp_gt`: after temperature/top-k/top-p).
  Returns 0 at masked positions.
  """
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  log_w = jnp.where(mask_gt > 0, logp_old_gt - sample_logp_gt, 0.0)
  return jax.lax.stop_gradient(jnp.minimum(jnp.exp(log_w), cap) * mask_gt)


def _masked_mean(x_gt, mask_gt):
  return (x_gt * mask_gt).sum() / jnp.maximum(mask_gt.sum(), 1.0)


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip_loss(
  logp_gt,
  logp_old_gt,
  advantages_gt,
  mask_gt,
  *,
  eps_low: float = 0.2,
  eps_high: float | None = None,
  dual_clip_c: float | None = None,
  tis_weight_gt=None,
  aggregation: str = "token_mean",
  num_tokens=None,
  num_seqs=None,
  max_len=None,
) -> tuple[jax.Array, dict[str, Any]]:
  """Clipped surrogate policy loss with clip-higher, dual-clip and TIS.

    rho_t = exp(logp_t - logp_old_t)
    l_t   = max(-A_t rho_t, -A_t clip(rho_t, 1 - eps_low, 1 + eps_high))  (PPO; DAPO clip-higher)
    l_t   = min(l_t, -c A_t)  where A_t < 0                         (dual-clip, Ye et al. 2020)
    l_t   = w_t l_t                                                 (TIS, w from `tis_weights`)
    loss  = aggregation(l, mask)

  `eps_high` defaults to `eps_low` (symmetric). `dual_clip_c` (> 1) bounds the loss
  of negative-advantage tokens whose ratio has blown up.

  Returns:
    (loss, metrics): metrics are local masked token means: `clip_frac_low`
    (A < 0, rho < 1 - eps_low), `clip_frac_high` (A > 0, rho > 1 + eps_high),
    `dual_clip_frac`, `approx_kl` (k3 estimate of KL(pi_old || pi)), `ratio_mean`.
  """
  eps_high = eps_low if eps_high is None else eps_high
  if dual_clip_c is not None and dual_clip_c <= 1.0:
    raise ValueError(f"dual_clip_c={dual_clip_c} must be > 1 (typically 3); or set it to None.")
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  adv = jax.lax.stop_gradient(jnp.asarray(advantages_gt, jnp.float32))
  # Zero log-ratio on padding keeps exp() finite whatever the padded logprobs hold.
  log_ratio = jnp.where(mask_gt > 0, logp_gt - logp_old_gt, 0.0)
  ratio = jnp.exp(log_ratio)
  pg1 = -adv * ratio
  pg2 = -adv * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
  pg = jnp.maximum(pg1, pg2)
  dual = jnp.zeros_like(pg, dtype=bool)
  if dual_clip_c is not None:
    bound = -dual_clip_c * adv
    dual = (adv < 0) & (pg > bound)
    pg = jnp.where(adv < 0, jnp.minimum(pg, bound), pg)
  if tis_weight_gt is not None:
    pg = pg * jax.lax.stop_gradient(tis_weight_gt)
  loss = aggregate(
    aggregation, pg, mask_gt, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len
  )
  ratio_sg = jax.lax.stop_gradient(ratio)
  log_ratio_sg = jax.lax.stop_gradient(log_ratio)
  metrics = {
    "clip_frac_low": _masked_mean(((adv < 0) & (ratio_sg < 1.0 - eps_low)), mask_gt),
    "clip_frac_high": _masked_mean(((adv > 0) & (ratio_sg > 1.0 + eps_high)), mask_gt),
    "dual_clip_frac": _masked_mean(dual, mask_gt),
    "approx_kl": _masked_mean(ratio_sg - 1.0 - log_ratio_sg, mask_gt),
    "ratio_mean": _masked_mean(ratio_sg, mask_gt),
  }
  return loss, metrics


@POLICY_LOSSES.register("pg")
def pg_loss(
  logp_gt,
  logp_old_gt,
  advantages_gt,
  mask_gt,
  *,
  tis_weight_gt=None,
  aggregation: str = "token_mean",
  num_tokens=None,
  num_seqs=None,
  max_len=None,
) -> tuple[jax.Array, dict[str, Any]]:
  """Importance-weighted policy gradient without clipping (REINFORCE on-policy).

    rho_t = exp(logp_t - logp_old_t)
    l_t   = -A_t rho_t                (gradient -A_t grad logp_t when pi = pi_old)
    l_t   = w_t l_t                   (TIS)
    loss  = aggregation(l, mask)

  Only safe with one update per batch (ppo.epochs = ppo.minibatches = 1): nothing bounds
  the ratio. Metrics: `approx_kl`, `ratio_mean`.
  """
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  adv = jax.lax.stop_gradient(jnp.asarray(advantages_gt, jnp.float32))
  log_ratio = jnp.where(mask_gt > 0, logp_gt - logp_old_gt, 0.0)
  ratio = jnp.exp(log_ratio)
  pg = -adv * ratio
  if tis_weight_gt is not None:
    pg = pg * jax.lax.stop_gradient(tis_weight_gt)
  loss = aggregate(
    aggregation, pg, mask_gt, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len
  )
  ratio_sg, log_ratio_sg = jax.lax.stop_gradient(ratio), jax.lax.stop_gradient(log_ratio)
  metrics = {
    "approx_kl": _masked_mean(ratio_sg - 1.0 - log_ratio_sg, mask_gt),
    "ratio_mean": _masked_mean(ratio_sg, mask_gt),
  }
  return loss, metrics


def value_loss(
  values_gt,
  values_old_gt,
  returns_gt,
  mask_gt,
  *,
  clip_eps: float | None = 0.2,
  aggregation: str = "token_mean",
  num_tokens=None,
  num_seqs=None,
  max_len=None,
) -> tuple[jax.Array, dict[str, Any]]:
  """PPO clipped value loss.

    V_clip = V_old + clip(V - V_old, -clip_eps, clip_eps)
    l_t    = 0.5 max((V - R)^2, (V_clip - R)^2)          (0.5 (V - R)^2 if clip_eps is None)
    loss   = aggregation(l, mask)

  Returns:
    (loss, metrics) with `value_clip_frac` (tokens where the clipped error is the
    larger) and `value_error` (local masked mean of (V - R)^2).
  """
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  returns_gt = jax.lax.stop_gradient(returns_gt)
  err = jnp.square(values_gt - returns_gt)
  if clip_eps is None:
    l_gt, clipped = 0.5 * err, jnp.zeros_like(err, dtype=bool)
  else:
    v_clip = values_old_gt + jnp.clip(values_gt - values_old_gt, -clip_eps, clip_eps)
    err_clip = jnp.square(v_clip - returns_gt)
    l_gt, clipped = 0.5 * jnp.maximum(err, err_clip), err_clip > err
  loss = aggregate(
    aggregation, l_gt, mask_gt, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len
  )
  metrics = {
    "value_clip_frac": _masked_mean(clipped, mask_gt),
    "value_error": _masked_mean(jax.lax.stop_gradient(err), mask_gt),
  }
  return loss, metrics
