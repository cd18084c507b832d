"""The KV-cache sampler against full recomputation, teacher forcing and numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify import sharding as shd
from jaxrl_verify.models import scoring
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer, default_positions
from jaxrl_verify.sampler import Sampler, SamplingParams, sample_from_logits

PAD, T, P = 0, 10, 6
TRUNC = SamplingParams(temperature=0.8, top_k=20, top_p=0.9)


def _greedy_by_recomputation(graphdef, state, prompt_bp, mask_bp):
  """Greedy tokens and their logprobs, re-running the full sequence for every token."""

  @jax.jit
  def next_logits(state, tokens, valid, slot):
    model = nnx.merge(graphdef, state)
    logits, _ = model(tokens, default_positions(tokens, valid), valid)
    return jax.lax.dynamic_index_in_dim(logits, slot, axis=1, keepdims=False)

  b, p = prompt_bp.shape
  tokens = np.concatenate([prompt_bp, np.full((b, T), PAD, np.int32)], 1)
  valid = np.concatenate([mask_bp, np.zeros((b, T), bool)], 1)
  logp_bt = np.zeros((b, T))
  for s in range(T):
    logits = np.asarray(next_logits(state, tokens, valid, p + s - 1), np.float64)
    tok = logits.argmax(-1)
    logz = logits.max(-1) + np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))
    logp_bt[:, s] = logits[np.arange(b), tok] - logz
    tokens[:, p + s], valid[:, p + s] = tok, True
  return tokens[:, p:], logp_bt


@pytest.fixture(scope="module")
def setup():
  cfg = get_preset("tiny")
  graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)))
  rng = np.random.default_rng(0)
  prompt_bp = rng.integers(4, cfg.vocab_size, (4, P)).astype(np.int32)
  mask_bp = np.ones((4, P), bool)
  mask_bp[1, :2] = mask_bp[2, :5] = mask_bp[3, :3] = False
  prompt_bp[~mask_bp] = PAD
  ref_tokens, ref_logp = _greedy_by_recomputation(graphdef, state, prompt_bp, mask_bp)
  # EOS: a token that row 0 emits mid-way and some other row never emits, so the batch
  # holds both finish reasons.
  eos = next(
    int(x) for x in ref_tokens[0, 1:-1] if any(x not in ref_tokens[r] for r in range(1, 4))
  )
  sampler = Sampler(graphdef, cfg, max_prompt_len=P + 3, max_new_tokens=T, eos_id=eos, pad_id=PAD)

  @jax.jit
  def score(state, prompt_bp, mask_bp, rollout):
    model = nnx.merge(graphdef, state)
    return scoring.completion_logprobs(
      model, prompt_bp, mask_bp, rollout.tokens_gt, rollout.mask_gt
    )

  trunc = sampler.generate(state, prompt_bp, mask_bp, jax.random.key(7), TRUNC)
  return dict(
    cfg=cfg,
    graphdef=graphdef,
    state=state,
    prompt_bp=prompt_bp,
    mask_bp=mask_bp,
    ref_tokens=ref_tokens,
    ref_logp=ref_logp,
    eos=eos,
    sampler=sampler,
    score=score,
    trunc=trunc,
  )


def _expected_greedy(s):
  """The recomputed greedy tokens cut after the first EOS, then pad."""
  tokens, mask = s["ref_tokens"].copy(), np.zeros_like(s["ref_tokens"], bool)
  finished = np.zeros(len(tokens), bool)
  for r in range(len(tokens)):
    hits = np.flatnonzero(tokens[r] == s["eos"])
    end = hits[0] + 1 if hits.size else T
    finished[r] = bool(hits.size)
    mask[r, :end] = True
    tokens[r, end:] = PAD
  return tokens, mask, finished


def test_greedy_kv_cache_equals_full_recomputation_with_eos(setup):
  s = setup
  out = s["sampler"].generate(
    s["state"], s["prompt_bp"], s["mask_bp"], None, SamplingParams(temperature=0.0)
  )
  tokens, mask, finished = _expected_greedy(s)
  assert finished.any() and not finished.all()
  np.testing.assert_array_equal(out.tokens_gt, tokens)
  np.testing.assert_array_equal(out.mask_gt, mask)
  np.testing.assert_array_equal(out.finished_eos_g, finished)
  np.testing.assert_array_equal(out.length_g, mask.sum(1))
  np.testing.assert_allclose(out.logp_gt, np.where(mask, s["ref_logp"], 0.0), atol=1e-5)
  np.testing.assert_array_equal(out.sample_logp_gt, 0.0)  # greedy: a point mass
  assert out.finish_reasons() == ["eos" if f else "length" for f in finished]


def test_greedy_deterministic_and_unaffected_by_left_padding(setup):
  s = setup
  greedy = SamplingParams(temperature=0.0)
  a = s["sampler"].generate(s["state"], s["prompt_bp"], s["mask_bp"], jax.random.key(0), greedy)
  b = s["sampler"].generate(s["state"], s["prompt_bp"], s["mask_bp"], jax.random.key(1), greedy)
  np.testing.assert_array_equal(a.tokens_gt, b.tokens_gt)
  wider_bp = np.pad(s["prompt_bp"], ((0, 0), (3, 0)), constant_values=PAD)
  wider_mask = np.pad(s["mask_bp"], ((0, 0), (3, 0)), constant_values=False)
  c = s["sampler"].generate(s["state"], wider_bp, wider_mask, None, greedy)
  np.testing.assert_array_equal(a.tokens_gt, c.tokens_gt)
  np.testing.assert_allclose(a.logp_gt, c.logp_gt, atol=1e-5)


@pytest.mark.parametrize("params", [SamplingParams(temperature=1.0), TRUNC])
def test_sampler_logprobs_equal_teacher_forced(setup, params):
  s = setup
  if params == TRUNC:
    out = s["trunc"]
  else:
    out = s["sampler"].generate(s["state"], s["prompt_bp"], s["mask_bp"], jax.random.key(3), params)
  assert out.mask_gt.sum() > 8
  teacher = s["score"](s["state"], s["prompt_bp"], s["mask_bp"], out)
  assert out.logp_gt.dtype == jnp.float32
  np.testing.assert_allclose(out.logp_gt, teacher, atol=1e-5, rtol=0)
  mask = np.asarray(out.mask_gt)
  assert np.all(np.asarray(out.tokens_gt)[~mask] == PAD)
  assert np.all(np.asarray(out.sample_logp_gt)[~mask] == 0.0)
  if params.static_key == (1.0, 0, 1.0):
    np.testing.assert_array_equal(out.sample_logp_gt, out.logp_gt)
  else:  # truncation and temperature < 1 sharpen: the sampled token gains probability
    assert np.all(np.asarray(out.sample_logp_gt)[mask] >= np.asarray(out.logp_gt)[mask] - 1e-6)


def test_sharded_2x2x2_equals_single_device(setup):
  s = setup
  mesh = shd.make_mesh((2, 2, 2))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), s["state"])
  state = jax.device_put(s["state"], shd.state_shardings(abstract, mesh))
  sampler = Sampler(
    s["graphdef"],
    s["cfg"],
    max_prompt_len=P + 3,
    max_new_tokens=T,
    eos_id=s["eos"],
    pad_id=PAD,
    mesh=mesh,
  )
  out = sampler.generate(state, s["prompt_bp"], s["mask_bp"], jax.random.key(7), TRUNC)
  assert out.tokens_gt.sharding.spec[0] == shd.BATCH_AXES
  ref = s["trunc"]
  np.testing.assert_array_equal(out.tokens_gt, ref.tokens_gt)
  np.testing.assert_array_equal(out.mask_gt, ref.mask_gt)
  np.testing.assert_array_equal(out.finished_eos_g, ref.finished_eos_g)
  np.testing.assert_allclose(out.logp_gt, ref.logp_gt, atol=1e-5)
  np.testing.assert_allclose(out.sample_logp_gt, ref.sample_logp_gt, atol=1e-5)


def _np_sampling_distribution(logits_v, params):
  """Numpy reference: temperature, top-k, then top-p over the renormalised top-k."""
  z = np.asarray(logits_v, np.float64) / params.temperature
  order = np.argsort(-z, kind="stable")
  keep = np.zeros(z.shape, bool)
  k = params.top_k or len(z)
  keep[order[:k]] = True
  probs = np.where(keep, np.exp(z - z.max()), 0.0)
  probs /= probs.sum()
  if params.top_p < 1.0:
    mass_before = np.cumsum(probs[order]) - probs[order]
    drop = order[mass_before >= params.top_p]
    drop = drop[drop != order[0]]
    probs[drop] = 0.0
    probs /= probs.sum()
  return probs


@pytest.mark.parametrize(
  "params",
  [
    SamplingParams(temperature=1.0, top_k=4),
    SamplingParams(temperature=0.7, top_p=0.8),
    SamplingParams(temperature=1.5, top_k=6, top_p=0.9),
    SamplingParams(temperature=1.0),
  ],
)
def test_top_k_top_p_sample_the_renormalised_distribution(params):
  logits_v = np.array([2.0, -1.0, 0.5, 1.7, 0.0, -3.0, 1.1, 0.3, -0.5, 0.9, 1.4, -2.0], np.float32)
  n = 4000
  tokens, logp, sample_logp = jax.jit(sample_from_logits, static_argnums=2)(
    jnp.broadcast_to(logits_v, (n, logits_v.size)), jax.random.key(0), params
  )
  probs = _np_sampling_distribution(logits_v, params)
  tokens = np.asarray(tokens)
  assert np.all(probs[tokens] > 0), "sampled a token outside the allowed set"
  np.testing.assert_allclose(sample_logp, np.log(probs[tokens]), atol=1e-5)
  policy = logits_v.astype(np.float64) - np.log(np.exp(logits_v.astype(np.float64)).sum())
  np.testing.assert_allclose(logp, policy[tokens], atol=1e-5)
  # Pearson chi-square over the allowed tokens: mean m-1, sd sqrt(2(m-1)).
  allowed = np.flatnonzero(probs > 0)
  counts = np.bincount(tokens, minlength=logits_v.size)[allowed]
  expected = n * probs[allowed]
  chi2 = ((counts - expected) ** 2 / expected).sum()
  dof = len(allowed) - 1
  assert chi2 < dof + 5 * np.sqrt(2 * dof) + 5, (chi2, dof)


def test_bad_inputs_give_clear_errors(setup):
  s = setup
  sampler, state = s["sampler"], s["state"]
  empty = s["mask_bp"].copy()
  empty[2] = False
  with pytest.raises(ValueError, match="no real tokens"):
    sampler.generate(state, s["prompt_bp"], empty)
  too_long = np.ones((4, P + 4), np.int32)
  with pytest.raises(ValueError, match="max_prompt_len"):
    sampler.generate(state, too_long, np.ones_like(too_long, bool))
  right_padded = s["mask_bp"][:, ::-1]
  with pytest.raises(ValueError, match="LEFT-padded"):
    sampler.generate(state, s["prompt_bp"], right_padded)
  with pytest.raises(ValueError, match="exceeds"):
    sampler.generate(
      state, s["prompt_bp"], s["mask_bp"], None, SamplingParams(max_new_tokens=T + 1)
    )
  with pytest.raises(ValueError, match="temperature"):
    SamplingParams(temperature=-1.0)
  with pytest.raises(ValueError, match="top_p"):
    SamplingParams(top_p=0.0)
  with pytest.raises(ValueError, match="top_k"):
    SamplingParams(top_k=-2)
  with pytest.raises(ValueError, match="outside the vocabulary"):
    Sampler(s["graphdef"], s["cfg"], max_prompt_len=4, max_new_tokens=4, eos_id=10_000)
  mesh = shd.make_mesh((2, 2, 2))
  sharded = Sampler(
    s["graphdef"], s["cfg"], max_prompt_len=P, max_new_tokens=T, eos_id=None, mesh=mesh
  )
  with pytest.raises(ValueError, match="divisible"):
    sharded.generate(state, s["prompt_bp"][:3], s["mask_bp"][:3])


@pytest.mark.parametrize("mesh_shape", [None, (2, 2, 2)])
def test_prompt_repeats_prefill_each_prompt_once_with_the_same_samples(setup, mesh_shape):
  """GRPO layout (each prompt in r consecutive rows): prefilling once per prompt changes
  nothing; on the mesh too, where the r copies of a prompt live on other devices."""
  s, r = setup, 4
  prompt_gp = np.repeat(s["prompt_bp"], r, axis=0)
  mask_gp = np.repeat(s["mask_bp"], r, axis=0)
  sampler, state = s["sampler"], s["state"]
  if mesh_shape is not None:
    mesh = shd.make_mesh(mesh_shape)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    state = jax.device_put(state, shd.state_shardings(abstract, mesh))
    sampler = Sampler(
      s["graphdef"], s["cfg"], max_prompt_len=P + 3, max_new_tokens=T, eos_id=s["eos"],
      pad_id=PAD, mesh=mesh,
    )  # fmt: skip
  key = jax.random.key(11)
  each = s["sampler"].generate(s["state"], prompt_gp, mask_gp, key, TRUNC)
  shared = sampler.generate(state, prompt_gp, mask_gp, key, TRUNC, prompt_repeats=r)
  # Independent samples per row, not r copies of one.
  assert len({tuple(row) for row in np.asarray(shared.tokens_gt)}) > len(s["prompt_bp"])
  np.testing.assert_array_equal(shared.tokens_gt, each.tokens_gt)
  np.testing.assert_array_equal(shared.mask_gt, each.mask_gt)
  np.testing.assert_allclose(shared.logp_gt, each.logp_gt, atol=1e-5)
  np.testing.assert_allclose(shared.sample_logp_gt, each.sample_logp_gt, atol=1e-5)


def test_prompt_repeats_that_do_not_match_the_rows_are_refused(setup):
  s = setup
  with pytest.raises(ValueError, match="prompt_repeats=3 does not divide the prompt batch of 4"):
    s["sampler"].generate(s["state"], s["prompt_bp"], s["mask_bp"], prompt_repeats=3)
  with pytest.raises(ValueError, match="rows 0..1 should hold one prompt but differ"):
    s["sampler"].generate(s["state"], s["prompt_bp"], s["mask_bp"], prompt_repeats=2)
