"""Supervised warm start: teacher-forced next-token loss on task demonstrations.

Each example is `[bos] prompt demonstration [eos]`, tokenised as prompt and
demonstration separately so the boundary matches what the sampler sees in RL
(the prompt is encoded alone, the completion is generated after it). The loss
covers the demonstration and the EOS only.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxrl_verify import distributed
from jaxrl_verify.models import scoring

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER = re.compile(r"\d+(?:/\d+)?")


def with_box_noise(
  pairs: Iterable[tuple[str, str]], fraction: float, seed: int
) -> Iterator[tuple[str, str]]:
  """Imperfect demonstrations: a `fraction` of them box the wrong number.

  In a corrupted demonstration the worked steps stay right but the final
  `\\boxed{}` holds the first number of the demonstration instead of the result, the
  kind of copying slip a careless annotator makes. A policy trained on them learns
  to compute but often boxes the wrong value: a systematic error that greedy
  decoding repeats and that only a reward on the final answer can remove.
  """
  rng = np.random.default_rng([seed, 1])
  for prompt, demo in pairs:
    boxed = _BOXED.findall(demo)
    first = _NUMBER.search(demo)
    if boxed and first and first.group() != boxed[-1] and rng.random() < fraction:
      head, _, _ = demo.rpartition("\\boxed{")
      demo = head + "\\boxed{" + first.group() + "}"
    yield prompt, demo


def pack_examples(pairs: Iterable[tuple[str, str]], tokenizer, max_len: int):
  """(tokens_bt int32, valid_bt bool, loss_bt bool), right-padded to `max_len`.

  Examples longer than `max_len` are skipped (counted in the returned `skipped`).
  """
  rows, skipped = [], 0
  for prompt, demo in pairs:
    p = tokenizer.encode(prompt, add_bos=True)
    c = tokenizer.encode(demo, add_eos=True)
    if len(p) + len(c) > max_len:
      skipped += 1
      continue
    rows.append((p, c))
  b = len(rows)
  tokens = np.full((b, max_len), tokenizer.pad_id, np.int32)
  valid = np.zeros((b, max_len), bool)
  loss = np.zeros((b, max_len), bool)
  for i, (p, c) in enumerate(rows):
    tokens[i, : len(p) + len(c)] = p + c
    valid[i, : len(p) + len(c)] = True
    loss[i, len(p) : len(p) + len(c)] = True
  return tokens, valid, loss, skipped


def make_sft_step(graphdef, tx: optax.GradientTransformation):
  """Jitted `step(params, opt_state, tokens, valid, loss_mask) -> (params, opt_state, loss)`."""

  def loss_fn(params, tokens_bt, valid_bt, loss_bt):
    model = nnx.merge(graphdef, params)
    logp_bt = scoring.teacher_forced_logprobs(model, tokens_bt, valid_bt)
    mask_bt = loss_bt[:, 1:].astype(jnp.float32)
    return -(logp_bt * mask_bt).sum() / jnp.maximum(mask_bt.sum(), 1.0)

  @jax.jit
  def step(params, opt_state, tokens_bt, valid_bt, loss_bt):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens_bt, valid_bt, loss_bt)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


def warm_start(
  graphdef,
  params,
  pairs: Iterable[tuple[str, str]],
  tokenizer,
  *,
  steps: int,
  batch_size: int,
  learning_rate: float,
  max_len: int,
  mesh,
  log: Callable[[int, float], None] | None = None,
):
  """Runs `steps` AdamW steps of supervised training and returns the new params.

  `pairs` is cycled if it runs out. The learning rate decays linearly to 0.
  """
  tokens, valid, loss_mask, skipped = pack_examples(pairs, tokenizer, max_len)
  if len(tokens) < batch_size:
    raise ValueError(
      f"Only {len(tokens)} demonstrations fit sft.max_len={max_len} ({skipped} were longer); "
      "raise sft.max_len or lower sft.batch_size."
    )
  tx = optax.adamw(optax.linear_schedule(learning_rate, 0.0, steps), weight_decay=0.0)
  opt_state = distributed.init_optimizer(tx, params, mesh)  # Moments sharded like params.
  step_fn = make_sft_step(graphdef, tx)
  n = (len(tokens) // batch_size) * batch_size
  starts = itertools.cycle(range(0, n, batch_size))
  for i in range(steps):
    s = next(starts)
    # Each process feeds its own contiguous slice of the global batch.
    rows = np.array_split(np.arange(s, s + batch_size), jax.process_count())[jax.process_index()]
    batch = distributed.to_global((tokens[rows], valid[rows], loss_mask[rows]), mesh)
    params, opt_state, loss = step_fn(params, opt_state, *batch)
    if log is not None and (i + 1) % 50 == 0:
      log(i + 1, float(loss))
  return params
