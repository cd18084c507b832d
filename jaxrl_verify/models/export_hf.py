"""Exports a jaxrl_verify model directory as a Hugging Face checkpoint (Llama, Qwen2, Gemma).

  python -m jaxrl_verify.models.export_hf CKPT_DIR OUT_DIR --arch llama|qwen2|gemma

Writes `config.json` and `model.safetensors` (plus `tokenizer.model` if the model has one)
that `transformers.AutoModelForCausalLM.from_pretrained(OUT_DIR)` loads. Tensors keep the
model's parameter dtype. The whole model is gathered on the host (one file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import numpy as np
from safetensors.numpy import save_file

from jaxrl_verify import files
from jaxrl_verify.models import hf, io
from jaxrl_verify.models.config import ModelConfig


def export_hf(ckpt_dir: str | os.PathLike, out_dir: str | os.PathLike, *, arch: str) -> ModelConfig:
  """Writes the model in `ckpt_dir` to `out_dir` in the HF `arch` layout.

  Args:
    ckpt_dir: a model directory (`io.save_model` / `import_hf` output).
    out_dir: directory to write; must not already hold a model.safetensors.
    arch: `llama`, `qwen2` or `gemma`.

  Returns:
    The exported model's config.

  Raises:
    FileNotFoundError / ValueError: as `io.load_model`, or `arch` cannot express the model.
    FileExistsError: `out_dir` already holds an export.
  """
  cfg = io.load_config(ckpt_dir)
  hf_config = hf.to_hf_config(cfg, arch)  # Fails early, before reading any weights.
  weights_path = os.path.join(out_dir, "model.safetensors")
  if os.path.exists(weights_path):
    raise FileExistsError(f"{weights_path} already exists; export into a new or empty directory.")
  loaded = io.load_model(ckpt_dir)
  params = io.pure_params(loaded.state)  # String layer keys, as in `hf.tensors` paths.
  tensors = {
    t.hf_name: np.ascontiguousarray(
      t.to_hf(np.asarray(jax.device_get(hf.get_path(params, t.path))))
    )
    for t in hf.tensors(cfg)
  }
  os.makedirs(out_dir, exist_ok=True)
  # Every file through a temporary name, the weights last: an interrupted export leaves no
  # model.safetensors, so it never looks complete and a rerun is not refused.
  with files.atomic_output(os.path.join(out_dir, "config.json")) as f:
    json.dump(hf_config, f, indent=2, sort_keys=True)
  if loaded.tokenizer is not None:  # tokenizer.model, or tokenizer.json + its config.
    for name, data in loaded.tokenizer.files().items():
      with files.atomic_output(os.path.join(out_dir, name), "wb") as f:
        f.write(data)
  with files.atomic_path(weights_path) as tmp:
    save_file(tensors, tmp, metadata={"format": "pt"})
  return cfg


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.models.export_hf", description=__doc__
  )
  parser.add_argument("ckpt_dir", help="model directory (from save_model or import_hf)")
  parser.add_argument("out_dir", help="directory to write the HF checkpoint to")
  parser.add_argument("--arch", required=True, choices=sorted(hf.ARCH_CLASS))
  args = parser.parse_args(argv)

  def body() -> str:
    export_hf(args.ckpt_dir, args.out_dir, arch=args.arch)
    return f"Wrote {args.out_dir} ({args.arch})"

  return files.run_cli("export_hf", body)


if __name__ == "__main__":
  sys.exit(main())
