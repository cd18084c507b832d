"""Drawing one token per row from logits: greedy, temperature, top-k, top-p.

Order of the transforms (as in Hugging Face's logits warpers): temperature, then
top-k, then top-p over the renormalised top-k distribution. Truncation works on
sorted logits (`lax.top_k`), so the sample is drawn among at most k candidates and
mapped back to vocabulary ids. The sampled token's log-probability is returned under
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
    token_b = jax.random.categorical(rng, logits_bv, axis=-1).astype(jnp.int32)
    logp_b = jnp.take_along_axis(logp_bv, token_b[:, None], axis=-1)[:, 0]
    return token_b, logp_b, logp_b
  else:
    vals_bc, ids_bc = truncated_logits(logits_bv, params)
    choice_b = jax.random.categorical(rng, vals_bc, axis=-1)
    token_b = jnp.take_along_axis(ids_bc, choice_b[:, None], axis=-1)[:, 0]
    sample_logp_b = jnp.take_along_axis(
      jax.nn.log_softmax(vals_bc, axis=-1), choice_b[:, None], axis=-1
    )[:, 0]
  logp_b = jnp.take_along_axis(logp_bv, token_b[:, None], axis=-1)[:, 0]
  return token_b, logp_b, sample_logp_b
