"""Teacher-forced scoring: per-token log-probabilities (and entropies) of given tokens.

Pure functions of a `Transformer` module, meant to run inside `jax.jit` after
`nnx.merge(graphdef, state)`; they are differentiable, so the trainer calls
`completion_logprobs` inside its loss.

Cost model: the decoder runs once over `[prompt, completion]`; the vocabulary
projection runs only on the `t` hidden states that predict completion tokens (never
on prompt positions), optionally in chunks of `chunk_size` tokens under
`jax.checkpoint`, so at most `[b, chunk_size, v]` float32 logits are alive at once
in the forward *and* the backward pass. With `prompt_repeats=r` (GRPO groups: `r`
consecutive rows share one prompt) each prompt runs through the decoder once and
its keys and values are shared by the `r` completions, through the same slot-masked
cache the sampler uses: the same maths for `1/r` of the prompt compute, forward and
backward (the gradient of a shared key adds up over the group).

Slot layout equals the sampler's: the prompt is left-padded, the completion starts
right after it, positions count real tokens only (`default_positions`). So the
sampler's `Rollout.logp_gt` equals `completion_logprobs` up to float rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl_verify.models.transformer import KVCache, Transformer, default_positions


def gather_logprobs(logits_btv, tokens_bt) -> jax.Array:
  """float32 log softmax(logits)[token]: `z_y - logsumexp(z)`, any leading shape."""
  logits = logits_btv.astype(jnp.float32)
  picked = jnp.take_along_axis(logits, tokens_bt[..., None], axis=-1)[..., 0]
  return picked - jax.nn.logsumexp(logits, axis=-1)


def entropy(logits_btv) -> jax.Array:
  """float32 entropy `-sum_v p_v log p_v` of softmax(logits), any leading shape.

  `-inf` logits (a masked vocabulary) add 0.
  """
  # log_softmax shifts by the max first, so -sum p log p has no large cancelling terms;
  # the textbook `logsumexp(z) - sum p z` loses ~1e-5..1e-4 once logits reach tens.
  logp = jax.nn.log_softmax(logits_btv.astype(jnp.float32), axis=-1)
  p = jnp.exp(logp)
  return -jnp.where(p > 0, p * logp, 0.0).sum(-1)


def _score_hidden(model: Transformer, hidden_btd, targets_bt, return_entropy, chunk_size):
  """(logp_bt, entropy_bt or None) for hidden states that predict `targets_bt`."""

  def score(h_btd, y_bt):
    logits_btv = model.logits(h_btd)
    ent = entropy(logits_btv) if return_entropy else jnp.zeros(y_bt.shape, jnp.float32)
    return gather_logprobs(logits_btv, y_bt), ent

  b, t, d = hidden_btd.shape
  if not chunk_size or t <= chunk_size:
    logp_bt, ent_bt = score(hidden_btd, targets_bt)
  else:
    # Chunks over t, each rematerialised in the backward pass: the [b, c, v] logits
    # of only one chunk are ever alive.
    n = -(-t // chunk_size)
    pad = n * chunk_size - t
    h = jnp.pad(hidden_btd, ((0, 0), (0, pad), (0, 0)))
    y = jnp.pad(targets_bt, ((0, 0), (0, pad)))
    h_nbcd = h.reshape(b, n, chunk_size, d).swapaxes(0, 1)
    y_nbc = y.reshape(b, n, chunk_size).swapaxes(0, 1)
    step = jax.checkpoint(lambda carry, xs: (carry, score(*xs)))
    _, (logp_nbc, ent_nbc) = jax.lax.scan(step, None, (h_nbcd, y_nbc))
    logp_bt = logp_nbc.swapaxes(0, 1).reshape(b, -1)[:, :t]
    ent_bt = ent_nbc.swapaxes(0, 1).reshape(b, -1)[:, :t]
  return logp_bt, (ent_bt if return_entropy else None)


def completion_logprobs(
  model: Transformer,
  prompt_bp,
  prompt_mask_bp,
  completion_gt,
  completion_mask_gt,
  *,
  return_entropy: bool = False,
  chunk_size: int | None = None,
  prompt_repeats: int = 1,
):
  """Per-token log p(completion_t | prompt, completion_<t) under `model`, float32.

  Args:
    model: a `Transformer` (merged NNX module).
    prompt_bp: int32 [b, p] prompts, LEFT-padded (the last slot of every row is a
      real token; every row has at least one).
    prompt_mask_bp: bool [b, p] True on real prompt tokens.
    completion_gt: int32 [b, t] completions (b == g: repeat prompts per group).
    completion_mask_gt: bool [b, t] True on real completion tokens (a prefix of
      each row; pads after the end are never attended to).
    return_entropy: also return the entropy of each predictive distribution.
    chunk_size: if set, project to the vocabulary `chunk_size` tokens at a time.
    prompt_repeats: r > 1 promises that rows come in blocks of r consecutive rows
      with the same prompt (`np.repeat(prompts, r, axis=0)`, as GRPO groups are laid
      out); each block's prompt is then encoded once. Rows of a block whose prompts
      differ would silently score against the block's first prompt.

  Returns:
    `logp_gt` float32 [b, t], 0 where `completion_mask_gt` is False; with
    `return_entropy`, `(logp_gt, entropy_gt)` (entropy also 0 where masked).
  """
  hidden_btd = completion_hidden(
    model, prompt_bp, prompt_mask_bp, completion_gt, completion_mask_gt, prompt_repeats
  )
  logp_gt, ent_gt = _score_hidden(
    model, hidden_btd, completion_gt.astype(jnp.int32), return_entropy, chunk_size
  )
  mask_gt = completion_mask_gt.astype(jnp.bool_)
  logp_gt = jnp.where(mask_gt, logp_gt, 0.0)
  if return_entropy:
    return logp_gt, jnp.where(mask_gt, ent_gt, 0.0)
  return logp_gt


def completion_hidden(
  model, prompt_bp, prompt_mask_bp, completion_gt, completion_mask_gt, prompt_repeats: int = 1
) -> jax.Array:
  """Decoder hidden states [b, t, d] that predict the completion tokens.

  Row j of the result is the state right before completion token j is emitted (slot
  p - 1 + j of `[prompt, completion]`): what the policy's vocabulary projection and
  the critic's value head read. `model` is any module with `.decoder` and `.cfg`
  (`Transformer`, `ValueModel`); arguments as in `completion_logprobs`.
  """
  if prompt_repeats > 1:
    return _hidden_shared_prompt(
      model, prompt_bp, prompt_mask_bp, completion_gt, completion_mask_gt, prompt_repeats
    )
  p, t = prompt_bp.shape[1], completion_gt.shape[1]
  tokens_bs = jnp.concatenate([prompt_bp, completion_gt], axis=1).astype(jnp.int32)
  valid_bs = jnp.concatenate([prompt_mask_bp, completion_mask_gt], axis=1).astype(jnp.bool_)
  hidden_bsd, _ = model.decoder(tokens_bs, default_positions(tokens_bs, valid_bs), valid_bs)
  return hidden_bsd[:, p - 1 : p - 1 + t]


def _hidden_shared_prompt(model, prompt_bp, prompt_mask_bp, completion_gt, completion_mask_gt, r):
  """Hidden states [b, t, d] of slots p-1 .. p+t-2, each block's prompt encoded once.

  The block's prompt fills the first p slots of a cache (as the sampler's prefill
  does); the cache is repeated r times, and the completions' first t - 1 tokens are
  then run with it. Slots, masks and positions are those of the joint forward.
  """
  b, p = prompt_bp.shape
  t = completion_gt.shape[1]
  if b % r:
    raise ValueError(f"prompt_repeats={r} does not divide the {b} rows of the batch.")
  prompt_np = prompt_bp[::r].astype(jnp.int32)
  mask_np = prompt_mask_bp[::r].astype(jnp.bool_)
  cache = KVCache.init(model.cfg, b // r, p + t - 1)
  hidden_npd, cache = model.decoder(
    prompt_np, default_positions(prompt_np, mask_np), mask_np, cache
  )
  last_b1d = jnp.repeat(hidden_npd[:, -1:], r, axis=0)  # Slot p - 1 predicts token 0.
  if t == 1:
    return last_b1d
  cache = cache.repeat(r)
  inputs_bt = completion_gt[:, :-1].astype(jnp.int32)
  valid_bt = completion_mask_gt[:, :-1].astype(jnp.bool_)
  # The joint forward's positions: real prompt tokens, then real completion tokens.
  prompt_len_b = jnp.repeat(mask_np.sum(axis=1, dtype=jnp.int32), r)
  positions_bt = prompt_len_b[:, None] + jnp.cumsum(valid_bt.astype(jnp.int32), axis=1) - 1
  hidden_btd, _ = model.decoder(inputs_bt, positions_bt, valid_bt, cache)
  return jnp.concatenate([last_b1d, hidden_btd], axis=1)


def teacher_forced_logprobs(
  model: Transformer, tokens_bt, valid_bt=None, *, chunk_size: int | None = None
) -> jax.Array:
  """log p(tokens[:, i] | tokens[:, :i]) for i = 1..t-1: float32 [b, t-1].

  Args:
    model: a `Transformer`.
    tokens_bt: int32 [b, t] sequences, left- or right-padded.
    valid_bt: bool [b, t] real tokens (default all). Entries whose target is a pad,
      or whose target has no real token before it, are 0.
    chunk_size: optional vocabulary-projection chunk, as in `completion_logprobs`.
  """
  tokens_bt = tokens_bt.astype(jnp.int32)
  if valid_bt is None:
    valid_bt = jnp.ones(tokens_bt.shape, jnp.bool_)
  valid_bt = valid_bt.astype(jnp.bool_)
  hidden_btd, _ = model.decoder(tokens_bt, default_positions(tokens_bt, valid_bt), valid_bt)
  logp_bt, _ = _score_hidden(model, hidden_btd[:, :-1], tokens_bt[:, 1:], False, chunk_size)
  # A target counts if it is real and some real token precedes it (its context).
  has_context_bt = jnp.cumsum(valid_bt.astype(jnp.int32), axis=1)[:, :-1] > 0
  return jnp.where(valid_bt[:, 1:] & has_context_bt, logp_bt, 0.0)
