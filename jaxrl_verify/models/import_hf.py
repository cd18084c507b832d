"""Imports a local Hugging Face checkpoint (Llama, Qwen2, Gemma) as a jaxrl_verify model.

  python -m jaxrl_verify.models.import_hf HF_DIR OUT_DIR [--dtype float32|bfloat16]

HF_DIR holds `config.json` and `model.safetensors`, or shards listed in
`model.safetensors.index.json`. Tensors are read one at a time (memory-mapped) and cast
to the target dtype as they are converted, so the host holds at most one copy of the model
(in the target dtype) plus one tensor. OUT_DIR is written by `io.save_model` and can be
used as `config.model.init_from`. The tokenizer is carried over: `tokenizer.json` (with the
special tokens of `tokenizer_config.json` / `special_tokens_map.json`) when present, else a
sentencepiece `tokenizer.model`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

import jax
from absl import logging
from safetensors import safe_open

from jaxrl_verify import files
from jaxrl_verify.models import hf, io
from jaxrl_verify.models.config import DTYPES, ModelConfig

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def read_hf_config(hf_dir: str | os.PathLike) -> dict[str, Any]:
  """config.json of an HF checkpoint directory as a dict."""
  if not os.path.isdir(hf_dir):
    raise FileNotFoundError(f"Hugging Face checkpoint directory {hf_dir} does not exist.")
  path = os.path.join(hf_dir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"{hf_dir} has no config.json; pass a directory saved by transformers' save_pretrained."
    )
  try:
    with open(path) as f:
      config = json.load(f)
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON ({e}).") from e
  if not isinstance(config, dict):
    raise ValueError(f"{path} does not hold a JSON object.")
  return config


def weight_map(hf_dir: str | os.PathLike) -> dict[str, str]:
  """Tensor name -> safetensors file path, for one file or an index of shards."""
  index_path = os.path.join(hf_dir, INDEX_FILE)
  single_path = os.path.join(hf_dir, SINGLE_FILE)
  if os.path.exists(index_path):
    with open(index_path) as f:
      names = json.load(f).get("weight_map", {})
    shards = {name: os.path.join(hf_dir, file) for name, file in names.items()}
    for file in sorted(set(shards.values())):
      if not os.path.exists(file):
        raise FileNotFoundError(
          f"{INDEX_FILE} lists the shard {os.path.basename(file)} but it is missing from {hf_dir}."
        )
    return shards
  if os.path.exists(single_path):
    with safe_open(single_path, framework="numpy") as f:
      names = f.keys()  # A safe_open handle is not iterable itself.
    return {name: single_path for name in names}
  raise FileNotFoundError(
    f"{hf_dir} has neither {SINGLE_FILE} nor {INDEX_FILE}; only safetensors checkpoints are "
    "supported (convert .bin weights with save_pretrained(safe_serialization=True))."
  )


def _default_dtype(hf_config: dict[str, Any]) -> str:
  name = str(hf_config.get("dtype") or hf_config.get("torch_dtype") or "float32")
  return name if name in DTYPES else "float32"


def read_params(hf_dir: str | os.PathLike, cfg: ModelConfig) -> dict[str, Any]:
  """Our parameters (a pure dict of CPU jax arrays in `cfg.param_dtype`) from HF safetensors."""
  files = weight_map(hf_dir)
  specs = hf.tensors(cfg)
  expected = {t.hf_name for t in specs}
  for name in sorted(files):
    unused_head = name == "lm_head.weight" and cfg.tie_embeddings  # Some tied exports keep it.
    if name not in expected and not unused_head and not name.endswith(hf.IGNORED_SUFFIXES):
      raise ValueError(
        f"The checkpoint in {hf_dir} has tensor {name!r} that the {cfg.num_layers}-layer model "
        "does not use; check that config.json matches the weights."
      )
  cpu = jax.local_devices(backend="cpu")[0]
  params: dict[str, Any] = {}
  with contextlib.ExitStack() as stack:
    handles: dict[str, Any] = {}
    for spec in specs:
      if spec.hf_name not in files:
        raise ValueError(
          f"The checkpoint in {hf_dir} lacks tensor {spec.hf_name!r}; check that config.json "
          "matches the weights."
        )
      file = files[spec.hf_name]
      if file not in handles:
        handles[file] = stack.enter_context(safe_open(file, framework="numpy"))
      array = handles[file].get_tensor(spec.hf_name)
      if tuple(array.shape) != spec.hf_shape:
        raise ValueError(
          f"Tensor {spec.hf_name!r} has shape {tuple(array.shape)} but config.json implies "
          f"{spec.hf_shape}; check that config.json matches the weights."
        )
      converted = spec.to_ours(array).astype(cfg.jnp_param_dtype)
      hf.set_path(params, spec.path, jax.device_put(converted, cpu))
  return params


def import_hf(
  hf_dir: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str | None = None
) -> ModelConfig:
  """Converts the HF checkpoint in `hf_dir` into a model directory `out_dir`.

  Args:
    hf_dir: directory with config.json and safetensors weights.
    out_dir: new directory to write (see `io.save_model`).
    dtype: parameter and compute dtype; default: the checkpoint's `torch_dtype`.

  Returns:
    The model config written.

  Raises:
    FileNotFoundError: missing directory, config.json or safetensors files.
    ValueError: unsupported architecture/options, or weights that do not match config.json.
  """
  hf_config = read_hf_config(hf_dir)
  dtype = dtype or _default_dtype(hf_config)
  if dtype not in DTYPES:
    raise ValueError(f"--dtype must be one of {DTYPES}, got {dtype!r}.")
  cfg = hf.to_model_config(hf_config, dtype=dtype)
  params = read_params(hf_dir, cfg)
  io.save_model(out_dir, cfg, params, tokenizer=_tokenizer(hf_dir))
  return cfg


def _tokenizer(hf_dir: str | os.PathLike) -> Any | None:
  """The HF dir's `tokenizer.json`, else its sentencepiece `tokenizer.model`, if readable.

  One that our classes cannot read is skipped with a warning (the weights still import).
  """
  if os.path.exists(os.path.join(hf_dir, io.HF_TOKENIZER_FILENAME)):
    from jaxrl_verify.hf_tokenizer import HFTokenizer  # Lazy, like sentencepiece below.

    try:
      return HFTokenizer.load(hf_dir)
    except ValueError as e:
      logging.warning("Not copying the tokenizer.json of %s: %s", hf_dir, e)
  path = os.path.join(hf_dir, io.TOKENIZER_FILENAME)
  if not os.path.exists(path):
    return None
  from jaxrl_verify.sp_tokenizer import (
    SentencePieceTokenizer,
  )  # Lazy: sentencepiece is only needed here.

  try:
    with open(path, "rb") as f:
      return SentencePieceTokenizer.from_serialized(f.read(), path=path)
  except Exception as e:  # sentencepiece raises RuntimeError on a bad proto.
    logging.warning("Not copying %s: %s", path, e)
    return None


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.models.import_hf", description=__doc__
  )
  parser.add_argument("hf_dir", help="Hugging Face checkpoint directory")
  parser.add_argument("out_dir", help="model directory to write")
  parser.add_argument("--dtype", choices=DTYPES, default=None, help="default: the checkpoint's")
  args = parser.parse_args(argv)

  def body() -> str:
    cfg = import_hf(args.hf_dir, args.out_dir, dtype=args.dtype)
    return f"Wrote {args.out_dir}: {json.dumps(cfg.to_dict())}"

  return files.run_cli("import_hf", body)


if __name__ == "__main__":
  sys.exit(main())
