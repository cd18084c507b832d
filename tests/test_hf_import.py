"""Hugging Face import/export: parity with committed reference logits, round trip, clear errors.

The fixtures under tests/fixtures/hf/ were made by tests/fixtures/make_hf_reference.py with
the real transformers classes (see its docstring to rerun it); this test needs no torch.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from jaxrl_verify.models import export_hf, hf, import_hf, io
from jaxrl_verify.models.transformer import default_positions

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "hf")
ARCHS = ("llama", "qwen2", "gemma")


def _tensors(directory) -> dict[str, np.ndarray]:
  out = {}
  for name in sorted(os.listdir(directory)):
    if name.endswith(".safetensors"):
      out.update(load_file(os.path.join(directory, name)))
  return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """Each fixture imported once through the CLI entry point; arch -> model directory."""
  root = tmp_path_factory.mktemp("imported")
  out = {}
  for arch in ARCHS:
    out[arch] = str(root / arch)
    assert import_hf.main([os.path.join(FIXTURES, arch), out[arch], "--dtype", "float32"]) == 0
  return out


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_match_transformers_reference(imported, arch):
  ref = np.load(os.path.join(FIXTURES, arch, "reference_logits.npz"))
  valid_bt = ref["attention_mask"] > 0
  # Rows 0-1 use our default positions (left padding included); row 2 starts at 1000.
  np.testing.assert_array_equal(
    ref["position_ids"][:2], np.asarray(default_positions(ref["input_ids"][:2], valid_bt[:2]))
  )
  loaded = io.load_model(imported[arch])
  forward = jax.jit(lambda state, *batch: nnx.merge(loaded.graphdef, state)(*batch)[0])
  logits_btv = forward(loaded.state, ref["input_ids"], ref["position_ids"], valid_bt)
  diff = np.abs(np.asarray(logits_btv) - ref["logits"])[valid_bt]
  assert diff.max() <= 1e-4, f"{arch}: max abs logit difference {diff.max():.2e}"


def test_config_mapping(imported):
  llama, qwen2, gemma = (io.load_config(imported[a]) for a in ARCHS)
  assert llama.rope_scaling == {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64.0,
  }
  assert (llama.rope_theta, llama.tie_embeddings, llama.qkv_bias) == (500_000.0, False, False)
  assert (qwen2.qkv_bias, qwen2.tie_embeddings, qwen2.head_dim) == (True, True, 8)
  assert (gemma.num_kv_heads, gemma.head_dim, gemma.mlp_activation) == (1, 16, "geglu")
  assert gemma.norm_scale_plus_one and gemma.embed_scale and gemma.tie_embeddings


@pytest.mark.parametrize("arch", ARCHS)
def test_export_round_trip_reproduces_original_tensors(imported, arch, tmp_path):
  assert export_hf.main([imported[arch], str(tmp_path / "hf"), "--arch", arch]) == 0
  want, got = _tensors(os.path.join(FIXTURES, arch)), _tensors(tmp_path / "hf")
  assert sorted(got) == sorted(want)
  for name, value in want.items():
    np.testing.assert_array_equal(got[name], value, err_msg=name)
  # The exported config.json (legacy rope layout) imports to the same model config.
  with open(tmp_path / "hf" / "config.json") as f:
    assert hf.to_model_config(json.load(f)) == io.load_config(imported[arch])


def test_bfloat16_import_casts_every_tensor(tmp_path):
  cfg = import_hf.import_hf(os.path.join(FIXTURES, "gemma"), tmp_path / "m", dtype="bfloat16")
  assert cfg.param_dtype == cfg.dtype == "bfloat16"
  params = io.load_model(tmp_path / "m").state.to_pure_dict()
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
  want = load_file(os.path.join(FIXTURES, "gemma", "model.safetensors"))[
    "model.embed_tokens.weight"
  ]
  np.testing.assert_array_equal(
    np.asarray(params["decoder"]["embedder"]["embedding"]), want.astype(jnp.bfloat16)
  )


# ----------------------------------------------------------------------------- errors


def _hf_copy(tmp_path, arch="llama", **config_changes):
  """A writable copy of a fixture, with config.json fields changed (None deletes)."""
  directory = tmp_path / arch
  shutil.copytree(os.path.join(FIXTURES, arch), directory)
  with open(directory / "config.json") as f:
    config = json.load(f)
  for key, value in config_changes.items():
    if value is None:
      config.pop(key, None)
    else:
      config[key] = value
  (directory / "config.json").write_text(json.dumps(config))
  return directory


def test_missing_directory_config_and_weights(tmp_path, capsys):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    import_hf.import_hf(tmp_path / "nope", tmp_path / "out")
  with pytest.raises(FileNotFoundError, match="has no config.json"):
    import_hf.import_hf(tmp_path, tmp_path / "out")
  directory = _hf_copy(tmp_path)
  os.remove(directory / "model.safetensors")
  with pytest.raises(FileNotFoundError, match="has neither model.safetensors nor"):
    import_hf.import_hf(directory, tmp_path / "out")
  # The CLI prints the one sentence, no traceback, and exits with 2.
  assert import_hf.main([str(directory), str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("import_hf: error:") and "\n" not in err and "Traceback" not in err


def test_missing_shard(tmp_path):
  directory = _hf_copy(tmp_path, "qwen2")
  os.remove(directory / "model-00002-of-00003.safetensors")
  with pytest.raises(FileNotFoundError, match="lists the shard model-00002-of-00003"):
    import_hf.import_hf(directory, tmp_path / "out")


@pytest.mark.parametrize(
  "changes, match",
  [
    ({"architectures": ["MistralForCausalLM"]}, "Unsupported architecture"),
    ({"architectures": None, "model_type": "gpt2"}, "Unsupported architecture 'gpt2'"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}, "Unsupported rope scaling"),
    ({"hidden_act": "relu"}, "Unsupported activation 'relu'"),
    ({"attention_bias": True}, "attention_bias or mlp_bias are not supported"),
    ({"intermediate_size": 80}, "'model.layers.0.mlp.gate_proj.weight' has shape"),
    ({"num_hidden_layers": 1}, "'model.layers.1.input_layernorm.weight' that the 1-layer"),
    ({"num_hidden_layers": 3}, "lacks tensor 'model.layers.2.input_layernorm.weight'"),
  ],
)
def test_unsupported_or_mismatched_config(tmp_path, changes, match):
  directory = _hf_copy(tmp_path, **changes)
  with pytest.raises(ValueError, match=match):
    import_hf.import_hf(directory, tmp_path / "out")


def test_missing_tensor_is_named(tmp_path):
  directory = _hf_copy(tmp_path)
  tensors = load_file(directory / "model.safetensors")
  del tensors["model.layers.1.mlp.up_proj.weight"]
  save_file(tensors, directory / "model.safetensors")
  with pytest.raises(ValueError, match="lacks tensor 'model.layers.1.mlp.up_proj.weight'"):
    import_hf.import_hf(directory, tmp_path / "out")


def test_export_to_an_arch_that_cannot_express_the_model(imported, tmp_path):
  with pytest.raises(ValueError, match="qkv_bias=True but llama checkpoints need False"):
    export_hf.export_hf(imported["qwen2"], tmp_path / "x", arch="llama")
  with pytest.raises(ValueError, match="rope scaling cannot be expressed as qwen2"):
    export_hf.export_hf(imported["llama"], tmp_path / "x", arch="qwen2")
  assert not os.path.exists(tmp_path / "x")


def test_sentencepiece_tokenizer_is_carried_over(tmp_path):
  from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer

  texts = [f"{i} * {i} = {i * i}" for i in range(300)]
  tok = SentencePieceTokenizer.train(texts, vocab_size=300, model_prefix_or_dir=tmp_path)
  directory = _hf_copy(tmp_path, "gemma")
  shutil.copy(tok.path, directory / "tokenizer.model")
  import_hf.import_hf(directory, tmp_path / "with_tok")
  assert io.load_model(tmp_path / "with_tok").tokenizer.serialized_proto() == tok.serialized_proto()
  # A tokenizer.model our Tokenizer cannot read is skipped (with a warning), not fatal.
  (directory / "tokenizer.model").write_bytes(b"not a sentencepiece model")
  import_hf.import_hf(directory, tmp_path / "without_tok")
  assert io.load_model(tmp_path / "without_tok").tokenizer is None
