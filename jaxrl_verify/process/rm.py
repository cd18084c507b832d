r"""Reward models over steps: a process RM (a score at every step end) and an outcome RM.

Both are a decoder read at chosen tokens of `[bos, prompt, solution]`: the PRM at the last
token of every step (the state that has read the step), the ORM at the last token of the
solution only. Two heads (`HEADS`, `config.rm.head`) give a step's logit there:

- `scalar`: a fresh scalar head on the backbone (`models.transformer.ValueModel`).
- `token`: Math-Shepherd's PRM, the language model itself (`TokenHeadRM`, every weight
  from the policy): logit = l_good - l_bad, the LM head's logits of two label tokens (`+`
  and `-` by default). sigmoid of that is softmax over the two tokens, so the BCE below is
  exactly the cross-entropy of the label over {good, bad}; the rest of the vocabulary is
  left out of the loss (it is never sampled there), so the LM keeps its other predictions.

Step k's score is p_k = sigmoid(logit_k), trained with binary cross-entropy on hard (0/1)
or soft (fraction of rollouts correct) labels:

  loss = sum_{b,k} m_bk * BCE(logit_bk, y_bk) / sum_{b,k} m_bk
  BCE(z, y) = max(z, 0) - z * y + log(1 + exp(-|z|))          (stable in z)

An ORM is the same model trained on outcome labels only (the solution's last step label,
i.e. whether the final answer is right), as TRL's `train_on_last_step_only`.

A solution's score from its step scores (`SOLUTION_SCORES`): `min` (Math-Shepherd),
`product` (PRM800K) or `last`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

from jaxrl_verify.models import transformer
from jaxrl_verify.process import steps as steps_lib

HEADS = ("scalar", "token")


class TokenHeadRM(transformer.Transformer):
  """A `Transformer` (same parameters, so a policy's state loads as is) whose step logit is
  the difference of two vocabulary logits: l[good_id] - l[bad_id] (Math-Shepherd's `+`/`-`).
  """

  def __init__(self, cfg, *, good_id: int, bad_id: int, rngs: nnx.Rngs):
    super().__init__(cfg, rngs=rngs)
    self.good_id, self.bad_id = int(good_id), int(bad_id)

  def step_logits(self, tokens_bt, valid_bt, step_pos_bs) -> jax.Array:
    """float32 [b, s] at the `step_pos_bs` positions; the LM head runs at those only."""
    positions_bt = transformer.default_positions(tokens_bt, valid_bt)
    hidden_btd, _ = self.decoder(tokens_bt, positions_bt, valid_bt)
    hidden_bsd = jnp.take_along_axis(hidden_btd, step_pos_bs[..., None], axis=1)
    logits_bsv = self.logits(hidden_bsd)
    return logits_bsv[..., self.good_id] - logits_bsv[..., self.bad_id]


def label_token_id(tokenizer, text: str, field: str) -> int:
  """The id of `text` when it is exactly one token; else a ValueError naming `field`."""
  ids = tokenizer.encode(text)
  if len(ids) != 1:
    raise ValueError(
      f"config.{field} {text!r} is {len(ids)} tokens for this tokenizer; the token head "
      "needs a string that is one token (e.g. '+' or '-')."
    )
  return ids[0]


@struct.dataclass
class RMBatch:
  """Solutions packed for a reward model (numpy or device arrays).

  Attributes:
    tokens_bt: int32 [b, t] `[bos, prompt, solution]` (each step followed by the format's
      separator), right-padded.
    valid_bt: bool [b, t] real tokens.
    step_pos_bs: int32 [b, s] position in `tokens_bt` of each step's last token (0 on padding).
    step_mask_bs: bool [b, s] steps that carry a label (all real steps for a PRM, the last
      one for an ORM).
    label_bs: float32 [b, s] labels in [0, 1] (0 on padding).
  """

  tokens_bt: jax.Array
  valid_bt: jax.Array
  step_pos_bs: jax.Array
  step_mask_bs: jax.Array
  label_bs: jax.Array


def pack(
  tokenizer,
  prompts: Sequence[str],
  solutions: Sequence[Sequence[str]],
  labels: Sequence[Sequence[float]] | None,
  fmt: steps_lib.StepFormat,
  *,
  max_len: int,
  max_steps: int,
  outcome_only: bool = False,
) -> RMBatch:
  """Packs solutions (with labels, or zeros for scoring) into an `RMBatch` of numpy arrays.

  Raises:
    ValueError: a solution with no steps, labels whose count differs from the steps',
      or a solution longer than `max_len` tokens / `max_steps` steps (naming it).
  """
  b = len(solutions)
  tokens = np.full((b, max_len), tokenizer.pad_id, np.int32)
  valid = np.zeros((b, max_len), bool)
  pos = np.zeros((b, max_steps), np.int32)
  mask = np.zeros((b, max_steps), bool)
  label = np.zeros((b, max_steps), np.float32)
  for i, (prompt, steps) in enumerate(zip(prompts, solutions)):
    if not steps:
      raise ValueError(f"Solution {i} has no steps; a solution needs at least one.")
    if labels is not None and len(labels[i]) != len(steps):
      raise ValueError(
        f"Solution {i} has {len(steps)} steps but {len(labels[i])} labels; give one per step."
      )
    if len(steps) > max_steps:
      raise ValueError(f"Solution {i} has {len(steps)} steps, more than max_steps={max_steps}.")
    head, ids, ends = _encode(tokenizer, prompt, steps, fmt)
    row = head + ids
    if len(row) > max_len:
      raise ValueError(
        f"Solution {i} takes {len(row)} tokens with its prompt, more than max_len={max_len}; "
        "raise max_len or drop it."
      )
    tokens[i, : len(row)], valid[i, : len(row)] = row, True
    n = len(steps)
    pos[i, :n] = [len(head) + e for e in ends]
    if outcome_only:
      mask[i, n - 1] = True
    else:
      mask[i, :n] = True
    if labels is not None:
      label[i, :n] = labels[i]
  return RMBatch(tokens, valid, pos, mask, label)


def _encode(tokenizer, prompt: str, steps: Sequence[str], fmt):
  """(prompt ids with bos, solution ids, each step's last position in the solution ids)."""
  head = tokenizer.encode(prompt, add_bos=True)
  # Every step, the last too, is followed by the separator: a step reads the same in a
  # partial solution (search, labelling) as in a whole one.
  ids, ends = steps_lib.step_end_positions(tokenizer, steps, fmt, trailing_separator=True)
  return head, ids, ends


def packed_length(tokenizer, prompt: str, steps: Sequence[str], fmt) -> int:
  """The tokens `pack` gives the solution with its prompt (to compare with `max_len`)."""
  head, ids, _ = _encode(tokenizer, prompt, steps, fmt)
  return len(head) + len(ids)


def step_logits(model, batch: RMBatch) -> jax.Array:
  """float32 [b, s] the head's logit at each step end (any value where not masked)."""
  if isinstance(model, TokenHeadRM):
    return model.step_logits(batch.tokens_bt, batch.valid_bt, batch.step_pos_bs)
  logits_bt = model(batch.tokens_bt, valid_bt=batch.valid_bt)
  return jnp.take_along_axis(logits_bt, batch.step_pos_bs, axis=1)


def bce_loss(logit_bs, label_bs, mask_bs) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Masked mean binary cross-entropy with logits, and the step accuracy at 0.5."""
  z = jnp.asarray(logit_bs, jnp.float32)
  y = jnp.asarray(label_bs, jnp.float32)
  m = jnp.asarray(mask_bs, jnp.float32)
  per = jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
  n = jnp.maximum(m.sum(), 1.0)
  acc = (((z > 0) == (y > 0.5)) * m).sum() / n
  return (per * m).sum() / n, {"loss": (per * m).sum() / n, "step_accuracy": acc}


def make_train_step(graphdef, tx: optax.GradientTransformation):
  """`step(params, opt_state, batch) -> (params, opt_state, metrics)`, to jit."""

  def loss_fn(params, batch: RMBatch):
    model = nnx.merge(graphdef, params)
    return bce_loss(step_logits(model, batch), batch.label_bs, batch.step_mask_bs)

  def step(params, opt_state, batch: RMBatch):
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    metrics["grad_norm"] = optax.global_norm(grads)
    return optax.apply_updates(params, updates), opt_state, metrics

  return step


def make_score_fn(graphdef):
  """`score(params, batch) -> float32 [b, s]` step probabilities sigmoid(logit), to jit."""

  def score(params, batch: RMBatch):
    return jax.nn.sigmoid(step_logits(nnx.merge(graphdef, params), batch))

  return score


def score_solutions(
  score_fn, params, tokenizer, fmt, prompts, solutions, *, max_len, max_steps, batch_size
) -> list[list[float]]:
  """Each solution's step probabilities, scored `batch_size` at a time.

  `score_fn` is `make_score_fn(graphdef)` jitted; the last chunk is padded with copies so
  every call has one shape. Raises what `pack` raises.
  """
  out: list[list[float]] = []
  for a in range(0, len(solutions), batch_size):
    rows = list(range(a, min(a + batch_size, len(solutions))))
    rows += [rows[-1]] * (batch_size - len(rows))
    batch = pack(
      tokenizer,
      [prompts[i] for i in rows],
      [solutions[i] for i in rows],
      None,
      fmt,
      max_len=max_len,
      max_steps=max_steps,
    )
    probs = np.asarray(score_fn(params, batch))
    for j in range(min(batch_size, len(solutions) - a)):
      out.append([float(p) for p in probs[j, : len(solutions[a + j])]])
  return out


# ----------------------------------------------------------------------------- solution scores


def solution_score(step_probs: Sequence[float], how: str) -> float:
  """One solution's score from its step probabilities: `min`, `product` or `last`.

  Raises:
    ValueError: unknown `how`, or no steps.
  """
  if not step_probs:
    raise ValueError("A solution needs at least one step score.")
  if how == "min":
    return float(min(step_probs))
  if how == "product":
    return float(math.prod(step_probs))
  if how == "last":
    return float(step_probs[-1])
  raise ValueError(f"Unknown solution score {how!r}; choose one of {SOLUTION_SCORES}.")


SOLUTION_SCORES = ("min", "product", "last")
