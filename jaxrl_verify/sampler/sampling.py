"""Drawing one token per row from logits: greedy, temperature, top-k, top-p.

Order of the transforms (as in Hugging Face's logits warpers): temperature, then
top-k, then top-p over the renormalised top-k distribution. Truncation works on
sorted logits (`lax.top_k`), so the sample is drawn among at most k candidates and
mapped back to vocabulary ids.

Drawing is by inverse CDF: one uniform number per row, `token = #{j: cdf_j <= u}`.
Gumbel-max (`jax.random.categorical`) would need `b * v` random numbers per step, which
cost as much as the rest of a small model's decode step on CPU (threefry); the inverse
CDF needs `b`, and a cumulative sum over the (already computed) probabilities. The
sampled token's log-probability is returned under
two distributions: the raw policy (softmax of the untouched logits, what the trainer
scores) and the distribution actually sampled from (for importance corrections).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl_verify.sampler.params import SamplingParams


def truncated_logits(logits_bv, params: SamplingParams):
  """(candidate logits [b, c], candidate ids [b, c]) of the sampling distribution.

  Candidates outside the top-p set carry -inf. Without truncation the candidates are
  the whole vocabulary in id order (no sort).
  """
  scaled_bv = logits_bv.astype(jnp.float32) / params.temperature
  b, v = scaled_bv.shape
  if params.top_k == 0 and params.top_p >= 1.0:
    return scaled_bv, jnp.broadcast_to(jnp.arange(v, dtype=jnp.int32), (b, v))
  k = min(params.top_k, v) if params.top_k > 0 else v
  vals_bc, ids_bc = jax.lax.top_k(scaled_bv, k)  # sorted, descending
  if params.top_p < 1.0:
    probs_bc = jax.nn.softmax(vals_bc, axis=-1)
    mass_before_bc = jnp.cumsum(probs_bc, axis=-1) - probs_bc
    # Keep a candidate while the mass of strictly better ones is below top_p; the
    # first candidate always stays (mass_before == 0).
    keep_bc = (mass_before_bc < params.top_p) | (jnp.arange(k) == 0)
    vals_bc = jnp.where(keep_bc, vals_bc, -jnp.inf)
  return vals_bc, ids_bc.astype(jnp.int32)


def _inverse_cdf(probs_bc, rng) -> jax.Array:
  """int32 [b]: index j with cdf_{j-1} <= u < cdf_j, u ~ U[0, cdf_last) per row.

  Entries of probability 0 are never drawn (their cdf step is empty).
  """
  cdf_bc = jnp.cumsum(probs_bc, axis=-1)
  u_b1 = jax.random.uniform(rng, (probs_bc.shape[0], 1), jnp.float32) * cdf_bc[:, -1:]
  index_b = jnp.sum(cdf_bc <= u_b1, axis=-1, dtype=jnp.int32)
  # Rounding may put u on the last step: clamp to the last entry with mass.
  c = probs_bc.shape[-1]
  last_b = c - 1 - jnp.argmax(probs_bc[:, ::-1] > 0, axis=-1).astype(jnp.int32)
  return jnp.minimum(index_b, last_b)


def sample_from_logits(logits_bv, rng, params: SamplingParams):
  """One token per row.

  Args:
    logits_bv: float32 [b, v] raw policy logits.
    rng: a PRNG key (unused when greedy).
    params: static sampling parameters.

  Returns:
    (token_b int32, logp_b float32 under softmax(logits_bv), sample_logp_b float32
    under the distribution sampled from; 0 for greedy, a point mass).
  """
  logits_bv = logits_bv.astype(jnp.float32)
  logp_bv = jax.nn.log_softmax(logits_bv, axis=-1)
  if params.greedy:
    token_b = jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)
    sample_logp_b = jnp.zeros(token_b.shape, jnp.float32)
  elif params.static_key == (1.0, 0, 1.0):
    # The sampling distribution is the policy itself: one log-softmax serves both.
    token_b = _inverse_cdf(jnp.exp(logp_bv), rng)
    logp_b = jnp.take_along_axis(logp_bv, token_b[:, None], axis=-1)[:, 0]
    return token_b, logp_b, logp_b
  else:
    vals_bc, ids_bc = truncated_logits(logits_bv, params)
    sample_logp_bc = jax.nn.log_softmax(vals_bc, axis=-1)
    choice_b = _inverse_cdf(jnp.exp(sample_logp_bc), rng)
    token_b = jnp.take_along_axis(ids_bc, choice_b[:, None], axis=-1)[:, 0]
    sample_logp_b = jnp.take_along_axis(sample_logp_bc, choice_b[:, None], axis=-1)[:, 0]
  logp_b = jnp.take_along_axis(logp_bv, token_b[:, None], axis=-1)[:, 0]
  return token_b, logp_b, sample_logp_b
