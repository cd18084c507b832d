"""save_model / load_model: round trips (single device, sharded, tokenizer) and clear errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify import sharding
from jaxrl_verify.models import io
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer

CFG = get_preset("tiny")


def _state_from(pure):
  """An `nnx.State` of a tiny Transformer holding the arrays of the pure dict `pure`."""
  state = nnx.state(nnx.eval_shape(lambda: Transformer(CFG, rngs=nnx.Rngs(0))), nnx.Param)
  nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, pure))
  return state


@jax.jit
def _logits(state, tokens_bt, valid_bt):
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: Transformer(CFG, rngs=nnx.Rngs(0))))
  return nnx.merge(graphdef, state)(tokens_bt, valid_bt=valid_bt)[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A tiny model saved once; returns (directory, the original state as a pure dict)."""
  directory = tmp_path_factory.mktemp("model") / "tiny"
  # Random numpy values (rather than the model's jitted init) keep the test fast.
  rng = np.random.default_rng(3)
  shapes = nnx.state(nnx.eval_shape(lambda: Transformer(CFG, rngs=nnx.Rngs(0))), nnx.Param)
  want = jax.tree.map(
    lambda a: rng.normal(size=a.shape).astype(np.float32) * 0.3, shapes.to_pure_dict()
  )
  io.save_model(directory, CFG, _state_from(want))
  return directory, want


def _assert_same_params(state, want_pure):
  got = jax.tree.map(np.asarray, state.to_pure_dict())
  assert jax.tree.structure(got) == jax.tree.structure(want_pure)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want_pure)):
    np.testing.assert_array_equal(a, b)


def test_round_trip_single_device_gives_same_params_and_logits(saved):
  directory, want = saved
  loaded = io.load_model(directory)
  assert loaded.cfg == CFG
  assert loaded.tokenizer is None
  _assert_same_params(loaded.state, want)
  assert {x.sharding.device_set.pop() for x in jax.tree.leaves(loaded.state)} == {
    jax.local_devices()[0]
  }
  tokens_bt = jnp.array([[5, 6, 7, 8], [0, 0, 9, 10]], jnp.int32)
  valid_bt = tokens_bt > 0
  want_logits = _logits(_state_from(want), tokens_bt, valid_bt)
  got_logits = _logits(loaded.state, tokens_bt, valid_bt)
  np.testing.assert_array_equal(np.asarray(got_logits), np.asarray(want_logits))


def test_restore_into_mesh_shardings(saved):
  directory, want = saved
  mesh = sharding.make_mesh((2, 2, 2))
  loaded = io.load_model(directory, mesh=mesh)
  _assert_same_params(loaded.state, want)
  abstract = nnx.split(nnx.eval_shape(lambda: Transformer(CFG, rngs=nnx.Rngs(0))))[1]
  want_shardings = sharding.state_shardings(abstract, mesh).to_pure_dict()
  for x, s in zip(jax.tree.leaves(loaded.state), jax.tree.leaves(want_shardings)):
    assert x.sharding == s
  # The embedding [v, d] is split over tensor (vocab) and fsdp (embed): each device holds 1/4.
  embedding = loaded.state["decoder"]["embedder"]["embedding"][...]
  assert embedding.addressable_shards[0].data.shape == (CFG.vocab_size // 2, CFG.embed_dim // 2)


def test_param_dtype_override_casts_on_restore(saved):
  directory, want = saved
  loaded = io.load_model(directory, param_dtype="bfloat16", dtype="bfloat16")
  assert loaded.cfg.param_dtype == "bfloat16" and loaded.cfg.dtype == "bfloat16"
  embedding = loaded.state["decoder"]["embedder"]["embedding"][...]
  assert embedding.dtype == jnp.bfloat16
  want_embedding = want["decoder"]["embedder"]["embedding"]
  np.testing.assert_array_equal(
    np.asarray(embedding), want_embedding.astype(jnp.bfloat16).astype(np.float32)
  )


def test_tokenizer_is_saved_and_restored(saved, tmp_path):
  from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer

  texts = [f"{i} + {i + 1} = {2 * i + 1}. The answer is {2 * i + 1}." for i in range(200)]
  tok = SentencePieceTokenizer.train(texts, vocab_size=300, model_prefix_or_dir=tmp_path)
  io.save_model(tmp_path / "m", CFG, saved[1], tokenizer=tok)
  loaded = io.load_model(tmp_path / "m")
  assert loaded.tokenizer.serialized_proto() == tok.serialized_proto()
  assert loaded.tokenizer.encode("12 + 13 = 25") == tok.encode("12 + 13 = 25")


def _copy_config(saved_dir, tmp_path, **changes):
  """A model dir whose params are `saved_dir`'s but whose config is changed."""
  directory = tmp_path / "changed"
  directory.mkdir()
  (directory / io.PARAMS_DIRNAME).symlink_to(saved_dir / io.PARAMS_DIRNAME)
  (directory / io.CONFIG_FILENAME).write_text(json.dumps(CFG.replace(**changes).to_dict()))
  return directory


def test_mismatched_params_name_the_first_key(saved, tmp_path):
  directory, _ = saved
  with pytest.raises(ValueError, match=r"'decoder\.layers\.2\.attn\.k_proj\.kernel' is missing"):
    io.load_model(_copy_config(directory, tmp_path, num_layers=3))


def test_mismatched_shape_names_the_key(saved, tmp_path):
  directory, _ = saved
  with pytest.raises(ValueError, match=r"'decoder\.layers\.0\.mlp\.down_proj\.kernel' has shape"):
    io.load_model(_copy_config(directory, tmp_path, mlp_dim=48))


def test_extra_stored_param_is_named(saved, tmp_path):
  directory, _ = saved
  with pytest.raises(ValueError, match=r"holds parameter 'lm_head\.kernel'"):
    io.load_model(_copy_config(directory, tmp_path, tie_embeddings=True))


def test_missing_directory_and_config(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    io.load_model(tmp_path / "nope")
  with pytest.raises(FileNotFoundError, match="has no model_config.json"):
    io.load_model(tmp_path)


@pytest.mark.parametrize(
  "text, match",
  [
    ("{not json", "is not a valid model config"),
    ("[1, 2]", "is not a valid model config"),
    (json.dumps({**CFG.to_dict(), "colour": "red"}), "Unknown model config keys"),
    (json.dumps({**CFG.to_dict(), "num_kv_heads": 3}), "multiple of model.num_kv_heads"),
  ],
)
def test_malformed_config(tmp_path, text, match):
  (tmp_path / io.CONFIG_FILENAME).write_text(text)
  with pytest.raises(ValueError, match=match):
    io.load_model(tmp_path)


def test_missing_or_non_orbax_params(tmp_path):
  (tmp_path / io.CONFIG_FILENAME).write_text(json.dumps(CFG.to_dict()))
  with pytest.raises(FileNotFoundError, match="has no 'params' directory"):
    io.load_model(tmp_path)
  (tmp_path / io.PARAMS_DIRNAME).mkdir()
  (tmp_path / io.PARAMS_DIRNAME / "weights.bin").write_bytes(b"\0" * 16)
  with pytest.raises(ValueError, match="is not a readable orbax checkpoint"):
    io.load_model(tmp_path)


def test_save_refuses_to_overwrite(saved):
  directory, _ = saved
  with pytest.raises(FileExistsError, match="already exists"):
    io.save_model(directory, CFG, saved[1])
