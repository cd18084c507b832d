"""The jitted RL update: gradient accumulation and sharding leave the update unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify import sharding
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer, ValueModel
from jaxrl_verify.rl import update

G, P, T = 16, 6, 5


def _setup(accum: int, mesh=None, **loss_kwargs):
  cfg = get_preset("tiny")
  factory = lambda: Transformer(cfg, rngs=nnx.Rngs(0))
  if mesh is None:
    graphdef, params = nnx.split(factory())
  else:
    graphdef, params, _ = sharding.create_sharded(factory, mesh)
  tx = update.make_optimizer(1e-2, total_steps=10, grad_clip=None)
  state = update.TrainState(
    step=jnp.zeros((), jnp.int32),
    policy=params,
    policy_opt=jax.jit(tx.init)(params),
    ref=jax.tree.map(jnp.copy, params),
    value=None,
    value_opt=None,
    rng=jax.random.PRNGKey(0),
  )
  loss_cfg = update.LossConfig(
    grad_accum_steps=accum,
    kl_coef=0.1,
    kl_in_loss=True,
    has_ref=True,
    entropy_coef=0.01,
    **loss_kwargs,
  )
  fn = jax.jit(update.make_update_fn(graphdef, None, tx, None, loss_cfg))
  return state, fn


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  prompt_mask = np.ones((G, P), bool)
  prompt_mask[:4, :2] = False  # Left padding on some rows.
  lengths = rng.integers(1, T + 1, size=G)
  completion_mask = np.arange(T)[None] < lengths[:, None]
  mask = completion_mask.astype(np.float32)
  mask[3] = 0.0  # An invalid verdict.
  f32 = lambda *s: rng.normal(size=s).astype(np.float32)
  return update.TrainBatch(
    prompt_gp=rng.integers(4, 128, size=(G, P)).astype(np.int32),
    prompt_mask_gp=prompt_mask,
    completion_gt=rng.integers(4, 128, size=(G, T)).astype(np.int32),
    completion_mask_gt=completion_mask,
    mask_gt=mask,
    logp_old_gt=-np.abs(f32(G, T)) * completion_mask,
    sample_logp_gt=-np.abs(f32(G, T)) * completion_mask,
    ref_logp_gt=-np.abs(f32(G, T)) * completion_mask,
    advantages_gt=f32(G, T) * mask,
    returns_gt=np.zeros((G, T), np.float32),
    values_old_gt=np.zeros((G, T), np.float32),
  )


def _close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


@pytest.mark.parametrize("accum", [2, 4])
def test_gradient_accumulation_equals_full_batch(accum):
  batch = _batch()
  state1, fn1 = _setup(1)
  state_k, fn_k = _setup(accum)
  new1, m1 = fn1(state1, batch)
  new_k, m_k = fn_k(state_k, batch)
  _close(new1.policy, new_k.policy, atol=1e-5)
  for key in ("loss/policy", "loss/pg"):
    np.testing.assert_allclose(m1[key], m_k[key], rtol=1e-4, atol=1e-6)
  # Logged token means stay token means (not divided by the accumulation steps).
  for key in ("entropy", "kl"):
    np.testing.assert_allclose(m1[key], m_k[key], rtol=0.2)
  assert int(new_k.step) == 1


def test_sharded_update_equals_single_device():
  batch = _batch(1)
  state, fn = _setup(2)
  ref_state, _ = fn(state, batch)
  mesh = sharding.make_mesh((2, 2, 2))
  sharded_state, sharded_fn = _setup(2, mesh)
  sharded_batch = jax.tree.map(
    lambda x: jax.device_put(x, sharding.batch_sharding(mesh, x.ndim)), batch
  )
  out_state, _ = sharded_fn(sharded_state, sharded_batch)
  _close(ref_state.policy, out_state.policy, atol=1e-5)


def test_shared_prompt_update_equals_the_per_row_one_sharded_or_not():
  """GRPO layout (2 prompts x 8 samples), 2 minibatches x 2 accumulation steps: each
  microbatch holds 2 rows of each prompt, which `prompt_repeats_for` finds."""
  group = 8
  batch = _batch(3)
  grouped = dict(
    prompt_gp=np.repeat(batch.prompt_gp[::group], group, axis=0),
    prompt_mask_gp=np.repeat(batch.prompt_mask_gp[::group], group, axis=0),
  )
  batch = batch.replace(**grouped)
  repeats = update.prompt_repeats_for(group, minibatches=2, grad_accum_steps=2)
  assert repeats == 2 and update.prompt_repeats_for(group, 3, 1) == 1
  state, fn = _setup(2, minibatches=2)
  ref_state, ref_m = fn(state, batch)
  mesh = sharding.make_mesh((2, 2, 2))
  for mesh_or_none in (None, mesh):
    state, fn = _setup(2, mesh_or_none, minibatches=2, prompt_repeats=repeats)
    if mesh_or_none is not None:
      batch = jax.tree.map(
        lambda x: jax.device_put(x, sharding.batch_sharding(mesh, x.ndim)), batch
      )
    out_state, out_m = fn(state, batch)
    _close(ref_state.policy, out_state.policy, atol=1e-5)
    np.testing.assert_allclose(out_m["loss/policy"], ref_m["loss/policy"], rtol=1e-4, atol=1e-6)


def _assert_bit_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nan_advantages_skip_the_update_and_leave_the_state_untouched():
  batch = _batch(2)
  advantages = batch.advantages_gt.copy()
  advantages[0, 0] = np.nan
  batch = batch.replace(advantages_gt=advantages)
  state, fn = _setup(1)
  new, metrics = fn(state, batch)
  _assert_bit_equal(
    (state.policy, state.policy_opt.inner_state), (new.policy, new.policy_opt.inner_state)
  )
  assert float(metrics["update/skipped_nonfinite"]) == 1.0
  assert float(metrics["update/optimizer_steps"]) == 1.0
  # The next, finite batch trains as usual; the running total keeps the skipped one.
  newer, metrics = fn(new, _batch(3))
  assert float(metrics["update/skipped_nonfinite"]) == 0.0
  assert float(metrics["update/skipped_nonfinite_total"]) == 1.0
  assert not np.allclose(
    np.asarray(jax.tree.leaves(newer.policy)[0]), np.asarray(jax.tree.leaves(new.policy)[0])
  )


def test_nan_logits_at_sampling_skip_only_their_minibatch():
  """NaN logits in the sampler give NaN behaviour logprobs for those rows: their minibatch
  is skipped, the other one trains, the parameters stay finite."""
  state, fn = _setup(1, minibatches=2)
  batch = _batch(4)
  logp_old = batch.logp_old_gt.copy()
  logp_old[0::2, 0] = np.nan  # Rows 0, 2, ...: the first strided minibatch (update._split).
  new, metrics = fn(state, batch.replace(logp_old_gt=logp_old))
  assert float(metrics["update/skipped_nonfinite"]) == 1.0
  assert float(metrics["update/optimizer_steps"]) == 2.0
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(new.policy))
  assert np.isfinite(float(metrics["loss/policy"]))  # The mean over the finite minibatch.
  # The finite minibatch alone equals an update on those rows only.
  only, _ = _setup(1, minibatches=1)[1](state, jax.tree.map(lambda x: x[1::2], batch))
  _close(only.policy, new.policy, atol=1e-6)


def test_critic_values_read_the_state_before_each_token_with_shared_prompts_too():
  cfg = get_preset("tiny")
  graphdef, state = nnx.split(ValueModel(cfg, rngs=nnx.Rngs(2)))
  group = 4
  batch = _batch(4)
  prompt_gp = np.repeat(batch.prompt_gp[::group], group, axis=0)
  prompt_mask_gp = np.repeat(batch.prompt_mask_gp[::group], group, axis=0)
  args = (prompt_gp, prompt_mask_gp, batch.completion_gt, batch.completion_mask_gt)

  @jax.jit
  def values(state):
    model = nnx.merge(graphdef, state)
    joint = update.critic_values(model, *args)
    shared = update.critic_values(model, *args, prompt_repeats=group)
    # Reference: the model over the whole sequence, read at slots p-1 .. p+t-2.
    tokens = jnp.concatenate([prompt_gp, batch.completion_gt], axis=1)
    valid = jnp.concatenate([prompt_mask_gp, batch.completion_mask_gt], axis=1)
    full = model(tokens, valid_bt=valid)[:, P - 1 : P - 1 + T] * batch.completion_mask_gt
    return joint, shared, full

  joint, shared, full = values(state)
  np.testing.assert_allclose(joint, full, atol=1e-6)
  np.testing.assert_allclose(shared, full, atol=1e-5)
  assert np.all(np.asarray(joint)[~batch.completion_mask_gt] == 0.0)
