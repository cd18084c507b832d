"""Saving and loading a model: parameters (orbax), its `ModelConfig`, and its tokenizer.

A model directory holds

* ``model_config.json``: ``ModelConfig.to_dict()``;
* ``params/``: an orbax checkpoint of the NNX parameter state as a pure dict of arrays
  (layer indices stored as the strings ``"0"``, ``"1"``, ... so the tree is plain JSON-like);
* the tokenizer (optional): ``tokenizer.model`` (a serialized sentencepiece model) or
  ``tokenizer.json`` + ``tokenizer_config.json`` (a Hugging Face tokenizer and its special
  tokens), as the tokenizer's ``files()`` gives them.

`load_model` restores the parameters straight into the shardings that
`sharding.state_shardings` gives for a mesh (each host reads only its shards; no full
replica is built first), or onto one device without a mesh. `import_hf` writes this
layout from a Hugging Face checkpoint; `config.model.init_from` points at it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx
from jax.sharding import Mesh, SingleDeviceSharding

from jaxrl_verify import sharding as sharding_lib
from jaxrl_verify.models.config import ModelConfig
from jaxrl_verify.models.transformer import Transformer

CONFIG_FILENAME = "model_config.json"
PARAMS_DIRNAME = "params"
TOKENIZER_FILENAME = "tokenizer.model"  # sentencepiece
HF_TOKENIZER_FILENAME = "tokenizer.json"


@dataclasses.dataclass
class LoadedModel:
  """A restored policy model.

  Attributes:
    cfg: the model config (with any dtype overrides applied).
    graphdef: the NNX graph definition of a `Transformer` for `cfg`.
    state: the parameter `nnx.State`; `nnx.merge(graphdef, state)` is the module.
    tokenizer: the tokenizer saved with the model (a `jaxrl_verify.tokenizer.Tokenizer`:
      `SentencePieceTokenizer` or `HFTokenizer`), or None.
  """

  cfg: ModelConfig
  graphdef: Any
  state: Any
  tokenizer: Any | None

  @property
  def model(self) -> Transformer:
    return nnx.merge(self.graphdef, self.state)


def pure_params(state: Any) -> dict[str, Any]:
  """The parameters as nested dicts with string keys (NNX list indices become "0", "1")."""
  if isinstance(state, nnx.Module):
    state = nnx.state(state, nnx.Param)
  if isinstance(state, nnx.State):
    state = state.to_pure_dict()

  def strkeys(node):
    if isinstance(node, dict):
      return {str(k): strkeys(v) for k, v in node.items()}
    return node

  return strkeys(state)


def _like(template: Any, restored: dict[str, Any]) -> Any:
  """`restored` (string keys) re-keyed like `template` (which may use int keys)."""
  if isinstance(template, dict):
    return {k: _like(v, restored[str(k)]) for k, v in template.items()}
  return restored


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    name = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flat(v, name + "."))
    else:
      out[name] = v
  return out


def save_model(
  directory: str | os.PathLike, cfg: ModelConfig, state: Any, *, tokenizer: Any = None
) -> None:
  """Writes `cfg`, the parameters and optionally the tokenizer to `directory`.

  Every process must call this (orbax coordinates the writes); small files are written by
  process 0 only.

  Args:
    directory: a new or empty directory (local path or an `etils.epath` URL).
    cfg: the model config.
    state: the parameters: an `nnx.State`, an `nnx.Module`, or a pure nested dict of arrays
      (the layout of `nnx.State.to_pure_dict()`), sharded or not.
    tokenizer: optional `Tokenizer` or `HFTokenizer` (anything with
      `files() -> {file name: bytes}`).

  Raises:
    FileExistsError: `directory` already holds saved parameters.
  """
  directory = epath.Path(directory)
  params_dir = directory / PARAMS_DIRNAME
  if params_dir.exists():
    raise FileExistsError(
      f"{params_dir} already exists; save the model into a new or empty directory."
    )
  if jax.process_index() == 0:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILENAME).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    if tokenizer is not None:
      for name, data in tokenizer.files().items():
        (directory / name).write_bytes(data)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(params_dir, pure_params(state))
    ckptr.wait_until_finished()


def load_config(directory: str | os.PathLike) -> ModelConfig:
  """The `ModelConfig` stored in a model directory.

  Raises:
    FileNotFoundError: the directory or its `model_config.json` does not exist.
    ValueError: `model_config.json` is not a valid model config.
  """
  directory = epath.Path(directory)
  if not directory.is_dir():
    raise FileNotFoundError(
      f"Model directory {directory} does not exist; pass a directory written by save_model "
      "or by `python -m jaxrl_verify.models.import_hf`."
    )
  path = directory / CONFIG_FILENAME
  if not path.exists():
    raise FileNotFoundError(
      f"{directory} has no {CONFIG_FILENAME}, so it is not a saved model; pass a directory "
      "written by save_model or by `python -m jaxrl_verify.models.import_hf`."
    )
  try:
    fields = json.loads(path.read_text())
    if not isinstance(fields, dict):
      raise ValueError("expected a JSON object")
    return ModelConfig.from_dict(fields)
  except (ValueError, TypeError) as e:
    raise ValueError(
      f"{path} is not a valid model config ({e}); rewrite it from ModelConfig.to_dict() or "
      "re-import the model."
    ) from e


def load_tokenizer(directory: str | os.PathLike) -> Any | None:
  """The tokenizer stored next to the model (see `tokenizer.load_any`), or None."""
  directory = epath.Path(directory)
  if not any((directory / n).exists() for n in (HF_TOKENIZER_FILENAME, TOKENIZER_FILENAME)):
    return None
  from jaxrl_verify.tokenizer import load_any  # Lazy: the tokenizer libraries load here.

  return load_any(directory)


def _stored_tree(params_dir: epath.Path) -> dict[str, Any]:
  try:
    with ocp.StandardCheckpointer() as ckptr:
      tree = ckptr.metadata(params_dir).item_metadata.tree
  except Exception as e:  # orbax raises assorted types for a non-checkpoint directory.
    raise ValueError(
      f"{params_dir} is not a readable orbax checkpoint ({type(e).__name__}); re-save the "
      "model with save_model or re-import it."
    ) from e
  if not isinstance(tree, dict):
    raise ValueError(f"{params_dir} does not hold a parameter dict; re-save the model.")
  return tree


def _check_matches(params_dir: epath.Path, stored: dict, target: dict) -> None:
  stored_flat, target_flat = _flat(stored), _flat(target)
  for key, want in target_flat.items():
    if key not in stored_flat:
      raise ValueError(
        f"Parameter '{key}' is missing from {params_dir}; the checkpoint was saved for a "
        "different model config than its model_config.json."
      )
    shape = tuple(stored_flat[key].shape)
    if shape != tuple(want.shape):
      raise ValueError(
        f"Parameter '{key}' has shape {shape} in {params_dir} but the model config expects "
        f"{tuple(want.shape)}; the checkpoint does not match its model_config.json."
      )
  for key in stored_flat:
    if key not in target_flat:
      raise ValueError(
        f"{params_dir} holds parameter '{key}' that the model config does not define; the "
        "checkpoint does not match its model_config.json."
      )


def load_model(
  directory: str | os.PathLike,
  *,
  mesh: Mesh | None = None,
  rules=None,
  param_dtype: str | None = None,
  dtype: str | None = None,
  with_tokenizer: bool = True,
) -> LoadedModel:
  """Restores a model saved by `save_model` (or written by `import_hf`).

  Args:
    directory: the model directory.
    mesh: if given, parameters are restored directly into
      `sharding.state_shardings(abstract_state, mesh, rules)`; otherwise onto the first
      local device.
    rules: logical-axis rules for the mesh (default `sharding.DEFAULT_RULES`).
    param_dtype: override the stored parameter dtype (values are cast while restoring).
    dtype: override the compute dtype.
    with_tokenizer: read the tokenizer (`tokenizer.json` or `tokenizer.model`) if present.

  Returns:
    A `LoadedModel`.

  Raises:
    FileNotFoundError: the directory, its config or its parameters are missing.
    ValueError: a malformed config, a non-orbax parameter directory, or parameters that do
      not match the config (the first mismatching key is named).
  """
  directory = epath.Path(directory)
  cfg = load_config(directory)
  overrides = {k: v for k, v in (("param_dtype", param_dtype), ("dtype", dtype)) if v}
  if overrides:
    cfg = cfg.replace(**overrides)
  params_dir = directory / PARAMS_DIRNAME
  if not params_dir.is_dir():
    raise FileNotFoundError(
      f"{directory} has no '{PARAMS_DIRNAME}' directory of parameters; re-save the model with "
      "save_model or re-import it."
    )
  stored = _stored_tree(params_dir)

  graphdef, abstract_state = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))
  if mesh is not None:
    shardings = sharding_lib.state_shardings(
      abstract_state, mesh, sharding_lib.DEFAULT_RULES if rules is None else rules
    )
    shardings_pure = shardings.to_pure_dict()
  else:
    device = SingleDeviceSharding(jax.local_devices()[0])
    shardings_pure = jax.tree.map(lambda _: device, abstract_state.to_pure_dict())
  template = abstract_state.to_pure_dict()
  target = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), template, shardings_pure
  )
  target = pure_params(target)
  _check_matches(params_dir, stored, target)
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(params_dir, target)
  state = abstract_state
  nnx.replace_by_pure_dict(state, _like(template, restored))
  tokenizer = load_tokenizer(directory) if with_tokenizer else None
  return LoadedModel(cfg=cfg, graphdef=graphdef, state=state, tokenizer=tokenizer)
