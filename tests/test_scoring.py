"""Teacher-forced scoring against numpy log-softmax over the model's full logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify.models import scoring
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer, default_positions


def _np_log_softmax(x):
  x = np.asarray(x, np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_logit_helpers_match_numpy_on_any_leading_shape():
  rng = np.random.default_rng(3)
  logits = rng.normal(scale=30.0, size=(2, 3, 4, 11)).astype(np.float32)
  logits[0, 0, 0, :5] = -np.inf  # masked vocabulary entries
  tokens = rng.integers(5, 11, size=(2, 3, 4))
  x = logits.astype(np.float64)
  lse = np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) + x.max(-1)
  p = np.exp(x - lse[..., None])
  want_ent = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(-1)
  want_lp = np.take_along_axis(x, tokens[..., None], -1)[..., 0] - lse
  logprobs_fn, entropy_fn = jax.jit(scoring.gather_logprobs), jax.jit(scoring.entropy)
  np.testing.assert_allclose(logprobs_fn(logits, tokens), want_lp, rtol=1e-5, atol=1e-4)
  # Logits of scale 30: the log_softmax form errs by ~1e-7 here, the cancelling
  # `logsumexp(z) - sum p z` by ~5e-6, so this tolerance holds the precise form.
  np.testing.assert_allclose(entropy_fn(logits), want_ent, rtol=0, atol=1e-6)
  lp_bf16 = logprobs_fn(jnp.asarray(logits, jnp.bfloat16), tokens)
  assert lp_bf16.dtype == jnp.float32 and lp_bf16.shape == (2, 3, 4)
  assert np.all(np.isfinite(lp_bf16))
  g = jax.grad(lambda z: scoring.entropy(z).sum() + scoring.gather_logprobs(z, tokens[1]).sum())
  assert np.all(np.isfinite(jax.jit(g)(jnp.asarray(logits)[1])))


@pytest.fixture(scope="module")
def setup():
  cfg = get_preset("tiny")
  graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(1)))
  rng = np.random.default_rng(0)
  b, p, t = 3, 5, 6
  prompt_bp = rng.integers(1, cfg.vocab_size, (b, p)).astype(np.int32)
  prompt_mask_bp = np.ones((b, p), bool)
  prompt_mask_bp[1, :2] = False  # left padding
  prompt_mask_bp[2, :4] = False
  prompt_bp[~prompt_mask_bp] = 0
  completion_bt = rng.integers(1, cfg.vocab_size, (b, t)).astype(np.int32)
  completion_mask_bt = np.ones((b, t), bool)
  completion_mask_bt[0, 4:] = False  # ended early
  completion_bt[~completion_mask_bt] = 0

  @jax.jit
  def full_logits(state, tokens, valid):
    model = nnx.merge(graphdef, state)
    return model(tokens, default_positions(tokens, valid), valid)[0]

  @jax.jit
  def score(state):
    model = nnx.merge(graphdef, state)
    return scoring.completion_logprobs(
      model,
      prompt_bp,
      prompt_mask_bp,
      completion_bt,
      completion_mask_bt,
      return_entropy=True,
    )

  return dict(
    cfg=cfg,
    graphdef=graphdef,
    state=state,
    prompt_bp=prompt_bp,
    prompt_mask_bp=prompt_mask_bp,
    completion_bt=completion_bt,
    completion_mask_bt=completion_mask_bt,
    full_logits=full_logits,
    score=score,
  )


def _reference(s):
  tokens = np.concatenate([s["prompt_bp"], s["completion_bt"]], 1)
  valid = np.concatenate([s["prompt_mask_bp"], s["completion_mask_bt"]], 1)
  logp_bsv = _np_log_softmax(s["full_logits"](s["state"], tokens, valid))
  p, t = s["prompt_bp"].shape[1], s["completion_bt"].shape[1]
  rows = logp_bsv[:, p - 1 : p - 1 + t]
  logp = np.take_along_axis(rows, s["completion_bt"][..., None], -1)[..., 0]
  ent = -(np.exp(rows) * rows).sum(-1)
  mask = s["completion_mask_bt"]
  return np.where(mask, logp, 0.0), np.where(mask, ent, 0.0)


def test_completion_logprobs_and_entropy_match_numpy(setup):
  logp, ent = setup["score"](setup["state"])
  ref_logp, ref_ent = _reference(setup)
  assert logp.dtype == jnp.float32 and logp.shape == setup["completion_bt"].shape
  np.testing.assert_allclose(logp, ref_logp, atol=2e-5)
  np.testing.assert_allclose(ent, ref_ent, atol=2e-5)
  assert np.all(np.asarray(logp)[~setup["completion_mask_bt"]] == 0.0)


def test_chunked_equals_unchunked_including_gradients(setup):
  s = setup
  model_args = (s["prompt_bp"], s["prompt_mask_bp"], s["completion_bt"], s["completion_mask_bt"])

  def loss(state, chunk_size):
    model = nnx.merge(s["graphdef"], state)
    logp, ent = scoring.completion_logprobs(
      model, *model_args, return_entropy=True, chunk_size=chunk_size
    )
    return logp.sum() + 0.1 * ent.sum(), logp

  grad_fn = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
  g_full, logp_full = grad_fn(s["state"], None)
  g_chunk, logp_chunk = grad_fn(s["state"], 4)  # 6 tokens: chunks of 4 and 2 (+ padding)
  np.testing.assert_allclose(logp_chunk, logp_full, atol=1e-6)
  for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_chunk)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(g_full))


def test_teacher_forced_logprobs_left_padded(setup):
  s = setup
  tokens = np.concatenate([s["prompt_bp"], s["completion_bt"]], 1)
  valid = np.concatenate([s["prompt_mask_bp"], np.ones_like(s["completion_mask_bt"])], 1)

  @jax.jit
  def tf(state, tokens, valid):
    return scoring.teacher_forced_logprobs(nnx.merge(s["graphdef"], state), tokens, valid)

  got = np.asarray(tf(s["state"], tokens, valid))
  logp_bsv = _np_log_softmax(s["full_logits"](s["state"], tokens, valid))
  ref = np.take_along_axis(logp_bsv[:, :-1], tokens[:, 1:, None], -1)[..., 0]
  # A target counts when it is real and a real token precedes it.
  has_context = np.cumsum(valid, 1)[:, :-1] > 0
  ref = np.where(valid[:, 1:] & has_context, ref, 0.0)
  assert got.shape == (tokens.shape[0], tokens.shape[1] - 1)
  np.testing.assert_allclose(got, ref, atol=2e-5)
  assert got[2, 0] == 0.0 and got[2, 3] == 0.0 and got[2, 4] != 0.0  # row 2: 4 pads


@pytest.mark.parametrize("t", [6, 1])
def test_shared_prompt_forward_equals_the_joint_one_including_gradients(setup, t):
  """GRPO layout: each prompt repeated r times; encoding it once changes nothing."""
  s, r = setup, 4
  rng = np.random.default_rng(7)
  prompt_gp = np.repeat(s["prompt_bp"], r, axis=0)
  prompt_mask_gp = np.repeat(s["prompt_mask_bp"], r, axis=0)
  g = prompt_gp.shape[0]
  completion_gt = rng.integers(1, s["cfg"].vocab_size, (g, t)).astype(np.int32)
  lengths_g = rng.integers(0, t + 1, g)  # Some rows end early, one may be empty.
  completion_mask_gt = np.arange(t)[None] < lengths_g[:, None]
  completion_gt[~completion_mask_gt] = 0
  args = (prompt_gp, prompt_mask_gp, completion_gt, completion_mask_gt)

  def loss(state, repeats):
    model = nnx.merge(s["graphdef"], state)
    logp, ent = scoring.completion_logprobs(
      model, *args, return_entropy=True, prompt_repeats=repeats
    )
    return logp.sum() + 0.1 * ent.sum(), logp

  grad_fn = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
  g_joint, logp_joint = grad_fn(s["state"], 1)
  g_shared, logp_shared = grad_fn(s["state"], r)
  # The joint forward against numpy's log-softmax over the full logits ...
  ref = dict(s, prompt_bp=prompt_gp, prompt_mask_bp=prompt_mask_gp)
  ref_logp, _ = _reference(
    dict(ref, completion_bt=completion_gt, completion_mask_bt=completion_mask_gt)
  )
  np.testing.assert_allclose(logp_joint, ref_logp, atol=2e-5)
  # ... and the shared one against the joint one, values and gradients.
  np.testing.assert_allclose(logp_shared, logp_joint, atol=2e-6)
  for a, b in zip(jax.tree.leaves(g_joint), jax.tree.leaves(g_shared)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="prompt_repeats=5 does not divide the 12 rows"):
    grad_fn(s["state"], 5)
