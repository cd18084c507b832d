"""The KV-cache sampler: jitted prefill, then a `lax.while_loop` decode.

Callers depend only on the `SamplerEngine` protocol (`generate(...) -> Rollout`), so a
paged-KV, continuous-batching engine can replace `Sampler` without touching them.

How one `generate` call runs (one compiled program per batch size, prompt width and
`SamplingParams.static_key`):

1. Prefill: the left-padded prompt `[b, p]` goes through the decoder once, writing
   cache slots `0..p-1`; logits are computed for the last prompt slot only. With
   `prompt_repeats=r` (rows in blocks of r copies of one prompt, as GRPO groups and
   pass@k batches are), each block's prompt is prefilled once and its cache and
   logits are repeated r times: the same sampling for 1/r of the prefill compute.
2. Decode: a `lax.while_loop` over a cache preallocated with `p + max_new_tokens`
   slots. Step `s` feeds the token sampled at step `s-1` into slot `p + s - 1` and
   samples token `s`. The loop exits as soon as every row has emitted EOS or a stop
   token, or after `max_new_tokens` steps. The carry holds the cache (updated in place
   by XLA), the last token, per-row lengths, done flags, the `[b, T]` output buffers
   and the rng: nothing of size `[b, v]`.
3. Finished rows feed pad tokens marked invalid (never attended to) and emit pad,
   mask False, logprob 0. The stop/EOS token itself is part of the completion.

Positions and cache slots are laid out exactly as `models.scoring.completion_logprobs`
lays them out, so `Rollout.logp_gt` equals the trainer's teacher-forced logprobs.

Sharding: with a mesh, prompts and every `Rollout` array are sharded along the batch
over ('data', 'fsdp'); parameters keep the shardings they come with; the cache is
constrained to the batch sharding (and kv heads over 'tensor' when they divide).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxrl_verify import sharding as shd
from jaxrl_verify.models.config import ModelConfig
from jaxrl_verify.models.transformer import KVCache, default_positions
from jaxrl_verify.sampler.decode import DecodeCache, decode_step
from jaxrl_verify.sampler.params import SamplingParams
from jaxrl_verify.sampler.sampling import sample_from_logits
from jaxrl_verify.types import Rollout


class SamplerEngine(Protocol):
  """What callers of a sampler rely on (and nothing more)."""

  def generate(
    self,
    state,
    tokens_bp,
    mask_bp,
    rng=None,
    params: SamplingParams | None = None,
    *,
    prompt_repeats: int = 1,
  ) -> Rollout: ...


class Sampler:
  """Batch sampler over a preallocated KV cache (see the module docstring).

  Attributes:
    cfg: the model config.
    max_prompt_len: the widest prompt batch accepted.
    max_new_tokens: completion length T of every `Rollout` (cache = p + T slots).
    eos_id: end-of-sequence id, or None to ignore EOS (benchmarks).
    stop_ids: further ids that end a completion (included in it, like EOS).
    pad_id: id emitted after a row has finished.
    mesh: optional device mesh; the batch is sharded over ('data', 'fsdp').
  """

  def __init__(
    self,
    graphdef: nnx.GraphDef,
    cfg: ModelConfig,
    *,
    max_prompt_len: int,
    max_new_tokens: int,
    eos_id: int | None,
    stop_ids: Sequence[int] = (),
    pad_id: int = 0,
    mesh: Mesh | None = None,
  ):
    if max_prompt_len < 1 or max_new_tokens < 1:
      raise ValueError(
        f"max_prompt_len ({max_prompt_len}) and max_new_tokens ({max_new_tokens}) must both "
        "be positive integers."
      )
    ids = ([] if eos_id is None else [eos_id]) + list(stop_ids) + [pad_id]
    bad = [i for i in ids if not 0 <= int(i) < cfg.vocab_size]
    if bad:
      raise ValueError(
        f"Token ids {bad} (eos/stop/pad) are outside the vocabulary [0, {cfg.vocab_size}); "
        "check the tokenizer against the model config."
      )
    self.graphdef, self.cfg, self.mesh = graphdef, cfg, mesh
    self.max_prompt_len, self.max_new_tokens = int(max_prompt_len), int(max_new_tokens)
    self.eos_id, self.pad_id = eos_id, int(pad_id)
    self.stop_ids = tuple(int(i) for i in ([] if eos_id is None else [eos_id]) + list(stop_ids))
    self._compiled = {}

  # ------------------------------------------------------------------ public API

  def generate(
    self,
    state,
    tokens_bp,
    mask_bp,
    rng=None,
    params: SamplingParams | None = None,
    *,
    prompt_repeats: int = 1,
  ) -> Rollout:
    """Samples `max_new_tokens` (at most) per row.

    Args:
      state: the policy's `nnx.State` (as split with `self.graphdef`).
      tokens_bp: int [b, p] prompts, LEFT-padded, p <= max_prompt_len.
      mask_bp: bool [b, p] True on real prompt tokens; every row needs one.
      rng: PRNG key; default `jax.random.key(params.seed)`.
      params: sampling parameters; default `SamplingParams()` (temperature 1).
      prompt_repeats: r > 1 when rows come in blocks of r identical prompts
        (`np.repeat(prompts, r, axis=0)`); each block is then prefilled once.

    Returns:
      A `Rollout` with arrays of shape [b, max_new_tokens] / [b] (see `types.py`).
    """
    params = SamplingParams() if params is None else params
    self._check_inputs(tokens_bp, mask_bp, params, prompt_repeats)
    steps = self.max_new_tokens if params.max_new_tokens is None else params.max_new_tokens
    if rng is None:
      rng = jax.random.key(params.seed)
    if self.mesh is not None:
      tokens_bp = jax.device_put(tokens_bp, shd.batch_sharding(self.mesh, 2))
      mask_bp = jax.device_put(mask_bp, shd.batch_sharding(self.mesh, 2))
    fn = self._fn(params.static_key, int(prompt_repeats))
    return fn(
      state,
      jnp.asarray(tokens_bp, jnp.int32),
      jnp.asarray(mask_bp, jnp.bool_),
      rng,
      jnp.asarray(steps, jnp.int32),
    )

  # ------------------------------------------------------------------ validation

  def _check_inputs(self, tokens_bp, mask_bp, params: SamplingParams, repeats: int) -> None:
    if np.ndim(tokens_bp) != 2 or np.shape(tokens_bp) != np.shape(mask_bp):
      raise ValueError(
        f"Prompt tokens {np.shape(tokens_bp)} and mask {np.shape(mask_bp)} must be 2-D "
        "arrays of the same shape [batch, prompt_len]."
      )
    b, p = np.shape(tokens_bp)
    if b == 0 or p == 0:
      raise ValueError(f"The prompt batch has shape {(b, p)}; it needs at least one token row.")
    if p > self.max_prompt_len:
      raise ValueError(
        f"Prompts are {p} tokens wide but the sampler accepts at most max_prompt_len="
        f"{self.max_prompt_len}; truncate the prompts or build the Sampler with a larger "
        "max_prompt_len."
      )
    if params.max_new_tokens is not None and params.max_new_tokens > self.max_new_tokens:
      raise ValueError(
        f"SamplingParams.max_new_tokens={params.max_new_tokens} exceeds the sampler's cache "
        f"room of max_new_tokens={self.max_new_tokens}; build the Sampler with more."
      )
    if repeats < 1 or b % repeats:
      raise ValueError(
        f"prompt_repeats={repeats} does not divide the prompt batch of {b} rows; pass a "
        "divisor of the batch size (the number of copies of each prompt)."
      )
    if self.mesh is not None:
      shd.check_batch_divides(b, self.mesh, "prompt batch size")
    if isinstance(mask_bp, jax.Array) and not mask_bp.is_fully_addressable:
      return  # multi-host: rows live on other hosts; each host validated its own.
    mask = np.asarray(mask_bp, bool)
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
      raise ValueError(
        f"Prompt rows {empty.tolist()[:8]} have no real tokens (empty prompts); every row "
        "needs at least one token with mask True."
      )
    not_left = np.flatnonzero(~mask[:, -1])
    if not_left.size:
      raise ValueError(
        f"Prompt rows {not_left.tolist()[:8]} do not end with a real token; prompts must be "
        "LEFT-padded (pads first, mask True on the last column)."
      )
    if repeats > 1:
      tokens = np.where(mask, np.asarray(tokens_bp), 0).reshape(b // repeats, repeats, p)
      blocks = mask.reshape(b // repeats, repeats, p)
      differs = np.flatnonzero(
        ~((tokens == tokens[:, :1]).all(axis=(1, 2)) & (blocks == blocks[:, :1]).all(axis=(1, 2)))
      )
      if differs.size:
        first = int(differs[0]) * repeats
        raise ValueError(
          f"With prompt_repeats={repeats}, rows {first}..{first + repeats - 1} should hold "
          "one prompt but differ; repeat each prompt in consecutive rows "
          "(np.repeat(prompts, r, axis=0)) or pass prompt_repeats=1."
        )

  # ------------------------------------------------------------------ compiled program

  def _fn(self, static_key, prompt_repeats: int):
    key = (static_key, prompt_repeats)
    if key not in self._compiled:
      temperature, top_k, top_p = static_key
      params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
      fn = functools.partial(_generate, self.graphdef, self.cfg, self, params, prompt_repeats)
      if self.mesh is None:
        self._compiled[key] = jax.jit(fn)
      else:
        rows = shd.batch_sharding(self.mesh, 2)
        out = Rollout(
          rows, rows, rows, rows, shd.batch_sharding(self.mesh, 1), shd.batch_sharding(self.mesh, 1)
        )
        self._compiled[key] = jax.jit(fn, out_shardings=out)
    return self._compiled[key]

  def _cache_sharding(self):
    tensor = self.mesh.shape["tensor"]
    heads = "tensor" if self.cfg.num_kv_heads % tensor == 0 else None
    return NamedSharding(self.mesh, PartitionSpec(shd.BATCH_AXES, heads, None, None))


def _generate(
  graphdef,
  cfg: ModelConfig,
  sampler: Sampler,
  params: SamplingParams,
  r: int,
  state,
  tokens_bp,
  mask_bp,
  rng,
  max_steps,
):
  """The jitted body of `Sampler.generate` (arguments after `r`, the prompt repeats, are traced)."""
  model = nnx.merge(graphdef, state)
  b, p = tokens_bp.shape
  big_t, pad = sampler.max_new_tokens, sampler.pad_id
  stop_ids = jnp.asarray(sampler.stop_ids or (-1,), jnp.int32)

  # ---- prefill: a p-slot cache for each distinct prompt, logits only for its last slot
  prompt_np, mask_np = tokens_bp[::r], mask_bp[::r]
  prefill = KVCache.init(cfg, b // r, p)
  hidden_npd, prefill = model.decoder(
    prompt_np, default_positions(prompt_np, mask_np), mask_np, prefill
  )
  logits_bv = jnp.repeat(model.logits(hidden_npd[:, -1:])[:, 0], r, axis=0)
  cache = DecodeCache.from_prefill(prefill.repeat(r), p + big_t)
  if sampler.mesh is not None:
    kv = sampler._cache_sharding()
    cache = cache.replace(
      k_bkhs=jax.lax.with_sharding_constraint(cache.k_bkhs, kv),
      v_bksh=jax.lax.with_sharding_constraint(cache.v_bksh, kv),
    )
  rng, key = jax.random.split(rng)
  token_b, logp_b, slogp_b = sample_from_logits(logits_bv, key, params)
  n_prompt_b = mask_bp.sum(axis=1).astype(jnp.int32)
  tokens_bt = jnp.full((b, big_t), pad, jnp.int32).at[:, 0].set(token_b)
  logp_bt = jnp.zeros((b, big_t), jnp.float32).at[:, 0].set(logp_b)
  slogp_bt = jnp.zeros((b, big_t), jnp.float32).at[:, 0].set(slogp_b)
  done_b = jnp.isin(token_b, stop_ids)
  length_b = jnp.ones((b,), jnp.int32)

  # ---- decode
  def cond(carry):
    step, _, _, done_b, *_ = carry
    return (step < max_steps) & ~jnp.all(done_b)

  def body(carry):
    step, cache, token_b, done_b, length_b, tokens_bt, logp_bt, slogp_bt, rng = carry
    active_b = ~done_b
    feed_b = jnp.where(active_b, token_b, pad)
    logits_bv, cache = decode_step(model, cache, feed_b, n_prompt_b + step - 1, active_b)
    rng, key = jax.random.split(rng)
    token_b, logp_b, slogp_b = sample_from_logits(logits_bv, key, params)
    token_b = jnp.where(active_b, token_b, pad)
    column = (0, step)
    tokens_bt = jax.lax.dynamic_update_slice(tokens_bt, token_b[:, None], column)
    logp_bt = jax.lax.dynamic_update_slice(
      logp_bt, jnp.where(active_b, logp_b, 0.0)[:, None], column
    )
    slogp_bt = jax.lax.dynamic_update_slice(
      slogp_bt, jnp.where(active_b, slogp_b, 0.0)[:, None], column
    )
    length_b = length_b + active_b.astype(jnp.int32)
    done_b = done_b | (active_b & jnp.isin(token_b, stop_ids))
    return step + 1, cache, token_b, done_b, length_b, tokens_bt, logp_bt, slogp_bt, rng

  carry = (
    jnp.ones((), jnp.int32),
    cache,
    token_b,
    done_b,
    length_b,
    tokens_bt,
    logp_bt,
    slogp_bt,
    rng,
  )
  _, _, _, done_b, length_b, tokens_bt, logp_bt, slogp_bt, _ = jax.lax.while_loop(cond, body, carry)
  return Rollout(
    tokens_gt=tokens_bt,
    mask_gt=jnp.arange(big_t)[None, :] < length_b[:, None],
    logp_gt=logp_bt,
    sample_logp_gt=slogp_bt,
    length_g=length_b,
    finished_eos_g=done_b,
  )
