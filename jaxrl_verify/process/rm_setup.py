"""The one place that builds a reward-model run's pieces: tokenizer, model, optimizer, state.

`train_rm` builds them to train; `score_steps` rebuilds them from a run directory (the
config stored with its checkpoints) to restore the parameters, so the two never disagree
on the model or the tokenizer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections as mlc
from flax import nnx, struct

from jaxrl_verify import checkpoint as ckpt_lib
from jaxrl_verify import distributed
from jaxrl_verify import sharding as shd
from jaxrl_verify.models import io as model_io
from jaxrl_verify.models import transformer
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import ValueModel
from jaxrl_verify.process import rm as rm_lib
from jaxrl_verify.rl import update as update_lib
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer
from jaxrl_verify.tokenizer import load_any

TOKENIZER_FILE = "tokenizer.model"


@struct.dataclass
class RMState:
  """What a reward-model run checkpoints. Attributes: step (int32 []), params, opt_state."""

  step: jax.Array
  params: Any
  opt_state: Any


def tokenizer(c, workdir: str, train_texts: Sequence[str] = ()):
  """`tokenizer.path`'s, `model.init_from`'s, or one trained on `train_texts` (saved to
  WORKDIR/tokenizer.model once and reused: resumes and `score_steps` read it back).

  Raises:
    ValueError: init_from carries no tokenizer, or none can be found or trained.
  """
  if c.tokenizer.path:
    return load_any(c.tokenizer.path)
  if c.model.init_from:
    tok = model_io.load_tokenizer(c.model.init_from)
    if tok is None:
      raise ValueError(f"{c.model.init_from} has no tokenizer; set config.tokenizer.path.")
    return tok
  path = os.path.join(workdir, TOKENIZER_FILE)
  if not os.path.exists(path) and not train_texts:
    raise ValueError(f"No tokenizer in {workdir}; is it the workdir of a train_rm run?")
  vocab = c.tokenizer.vocab_size
  distributed.share_file(path, lambda: SentencePieceTokenizer.train(train_texts, vocab, path))
  return SentencePieceTokenizer.load(path)


def model_config(c, tok):
  """init_from's model config, or the preset's with a vocabulary that fits `tok`."""
  if c.model.init_from:
    return model_io.load_config(c.model.init_from)
  vocab = -(-tok.vocab_size // 128) * 128
  overrides = dict(c.model.overrides)
  return get_preset(c.model.preset, vocab_size=vocab, num_valid_tokens=tok.vocab_size, **overrides)


def optimizer(c):
  """AdamW with warm-up and cosine decay (`update.make_optimizer`) from `config.optim`."""
  o = c.optim
  return update_lib.make_optimizer(
    o.learning_rate,
    total_steps=c.total_steps,
    warmup_steps=o.warmup_steps,
    min_lr_ratio=o.min_lr_ratio,
    weight_decay=o.weight_decay,
    grad_clip=o.grad_clip,
  )


def _head(c) -> str:
  return c.rm.get("head", "scalar")  # Checkpoints from before the token head have none.


def model_factory(c, cfg, tok) -> Callable[[], nnx.Module]:
  """Builds `config.rm.head`'s model: a `ValueModel` or an `rm.TokenHeadRM`.

  Raises:
    ValueError: a token head whose label tokens are not one token each.
  """
  rngs = lambda: nnx.Rngs(c.seed)  # noqa: E731
  if _head(c) == "scalar":
    return lambda: ValueModel(cfg, rngs=rngs())
  good = rm_lib.label_token_id(tok, c.rm.good_token, "rm.good_token")
  bad = rm_lib.label_token_id(tok, c.rm.bad_token, "rm.bad_token")
  return lambda: rm_lib.TokenHeadRM(cfg, good_id=good, bad_id=bad, rngs=rngs())


def init(c, cfg, tok, mesh) -> tuple[Any, RMState]:
  """(graphdef, a fresh RMState) from `model.init_from`'s policy (its backbone under a fresh
  scalar head, or every weight for the token head), else fresh."""
  rules = tuple(tuple(r) for r in c.sharding_rules)
  graphdef, params, _ = shd.create_sharded(model_factory(c, cfg, tok), mesh, rules)
  if c.model.init_from:
    policy = model_io.load_model(c.model.init_from, mesh=mesh, rules=rules)
    if _head(c) == "scalar":
      params = transformer.with_policy_backbone(params, policy.state)
    else:  # The same module tree as the policy's: copy it all (no buffers shared).
      params = jax.tree.map(jnp.copy, policy.state)
  opt_state = distributed.init_optimizer(optimizer(c), params, mesh)
  step = jax.device_put(jnp.zeros((), jnp.int32), shd.replicated(mesh))
  return graphdef, RMState(step, params, opt_state)


def state_target(c, cfg, tok, mesh) -> tuple[Any, RMState]:
  """(graphdef, the abstract RMState a run checkpoints), nothing allocated."""
  rules = tuple(tuple(r) for r in c.sharding_rules)
  graphdef, params = shd.abstract_sharded(model_factory(c, cfg, tok), mesh, rules)
  tx = optimizer(c)
  opt = shd.as_abstract(jax.eval_shape(tx.init, params), shd.optimizer_shardings(tx, params, mesh))
  step = jax.ShapeDtypeStruct((), jnp.int32, sharding=shd.replicated(mesh))
  return graphdef, RMState(step, params, opt)


def restore(workdir: str, *, step: int | None = None):
  """A trained reward model from its run directory: (config, tokenizer, graphdef, params).

  Raises:
    FileNotFoundError: no checkpoint in WORKDIR/checkpoints (or no such step).
  """
  mesh = shd.make_mesh((-1, 1, 1))
  built = {}

  def target(meta: dict):
    """The abstract state of the run that saved `meta` (its own config and tokenizer)."""
    c = mlc.ConfigDict(meta["config"])
    tok = tokenizer(c, workdir)
    graphdef, abstract = state_target(c, model_config(c, tok), tok, mesh)
    built.update(c=c, tok=tok, graphdef=graphdef)
    return abstract

  with ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints")) as checkpointer:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(
        f"No reward-model checkpoint in {workdir}/checkpoints; pass the --workdir of a "
        "`python -m jaxrl_verify.process.train_rm` run."
      )
    if step is None:  # The newest that restores (a damaged newer one is skipped, warned).
      _, state, _ = checkpointer.restore_latest(target)
    else:
      state, _ = checkpointer.restore(step, target_pytree=target(checkpointer.metadata(step)))
  return built["c"], built["tok"], built["graphdef"], state.params
