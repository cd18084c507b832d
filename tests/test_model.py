"""The decoder: KV-cache decoding, sharding, the value model, preset sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify import sharding as shd
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import (
  KVCache,
  Transformer,
  ValueModel,
  count_params,
  default_positions,
  with_policy_backbone,
)


@pytest.fixture(scope="module")
def tiny():
  cfg = get_preset("tiny")
  rng = np.random.default_rng(0)
  tokens_bt = rng.integers(1, cfg.vocab_size, (4, 9)).astype(np.int32)
  valid_bt = np.ones((4, 9), bool)
  valid_bt[1, :2] = valid_bt[3, :4] = False  # left padding
  tokens_bt[~valid_bt] = 0
  return cfg, tokens_bt, valid_bt


def test_kv_cache_decoding_equals_full_recomputation(tiny):
  cfg, tokens_bt, valid_bt = tiny
  graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)))
  p = 6  # prefill 6 slots, then decode the remaining 3 one at a time

  @jax.jit
  def both(state, tokens_bt, valid_bt):
    model = nnx.merge(graphdef, state)
    positions_bt = default_positions(tokens_bt, valid_bt)
    full_btv, _ = model(tokens_bt, positions_bt, valid_bt)
    cache = KVCache.init(cfg, tokens_bt.shape[0], tokens_bt.shape[1] + 2)  # spare slots
    logits, cache = model(tokens_bt[:, :p], positions_bt[:, :p], valid_bt[:, :p], cache)
    steps = [logits]
    for i in range(p, tokens_bt.shape[1]):
      sl = slice(i, i + 1)
      logits, cache = model(tokens_bt[:, sl], positions_bt[:, sl], valid_bt[:, sl], cache)
      steps.append(logits)
    return full_btv, jnp.concatenate(steps, axis=1), cache.index

  full_btv, cached_btv, index = both(state, tokens_bt, valid_bt)
  assert int(index) == tokens_bt.shape[1]
  # Rows with a real token in the slot (a query with no real key is undefined).
  np.testing.assert_allclose(cached_btv[valid_bt], full_btv[valid_bt], atol=1e-5)


def test_sharded_2x2x2_equals_single_device(tiny):
  cfg, tokens_bt, valid_bt = tiny
  factory = lambda: Transformer(cfg, rngs=nnx.Rngs(3))
  mesh = shd.make_mesh((2, 2, 2))
  graphdef, sharded_state, shardings = shd.create_sharded(factory, mesh)
  _, state = nnx.split(factory())
  # Same initial values (up to float rounding of the sharded initialiser).
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(sharded_state)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  spec = sharded_state["decoder"]["layers"][0]["mlp"]["gate_proj"]["kernel"].sharding.spec
  assert tuple(spec) == ("fsdp", "tensor")

  @jax.jit
  def logits(state, tokens_bt, valid_bt):
    return nnx.merge(graphdef, state)(tokens_bt, None, valid_bt)[0]

  single = logits(state, tokens_bt, valid_bt)
  tokens_sharded = jax.device_put(tokens_bt, shd.batch_sharding(mesh))
  valid_sharded = jax.device_put(valid_bt, shd.batch_sharding(mesh))
  sharded = logits(sharded_state, tokens_sharded, valid_sharded)
  np.testing.assert_allclose(sharded, single, atol=1e-5)


def test_value_model_from_policy(tiny):
  cfg, tokens_bt, valid_bt = tiny
  policy = Transformer(cfg, rngs=nnx.Rngs(0))
  value_graphdef, value_state = nnx.split(ValueModel(cfg, rngs=nnx.Rngs(1)))
  value = nnx.merge(value_graphdef, with_policy_backbone(value_state, nnx.state(policy)))
  for a, b in zip(
    jax.tree.leaves(nnx.state(policy.decoder)), jax.tree.leaves(nnx.state(value.decoder))
  ):
    np.testing.assert_array_equal(a, b)
  values_bt = value(tokens_bt, None, valid_bt)
  assert values_bt.shape == tokens_bt.shape and values_bt.dtype == jnp.float32
  np.testing.assert_array_equal(value.value_head.bias[...], 0.0)
  # A copy, not an alias: training the critic must not move the policy.
  value.decoder.final_norm.scale[...] = value.decoder.final_norm.scale[...] + 1.0
  np.testing.assert_array_equal(policy.decoder.final_norm.scale[...], 1.0)


@pytest.mark.parametrize(
  "preset,published",
  [
    ("qwen2.5-0.5b", 494e6),
    ("qwen2.5-1.5b", 1.54e9),
    ("qwen2.5-7b", 7.6e9),
    ("llama-3.2-1b", 1.24e9),
    ("llama-3.2-3b", 3.21e9),
    ("gemma-2b", 2.51e9),
  ],
)
def test_preset_parameter_counts_match_published_sizes(preset, published):
  abstract = nnx.eval_shape(lambda: Transformer(get_preset(preset), rngs=nnx.Rngs(0)))
  n = count_params(nnx.state(abstract, nnx.Param))
  assert abs(n - published) / published < 0.01, (preset, n)


def test_unknown_preset_is_a_clear_error():
  with pytest.raises(ValueError, match="Unknown model preset 'gpt-5'"):
    get_preset("gpt-5")
