"""The Hugging Face <-> jaxrl_verify mapping for Llama, Qwen2 and Gemma: configs and tensor names.

HF stores a linear layer as `weight [out, in]`; ours is `kernel [in, ...]` with the head axes
split out (`q_proj.kernel [d, n, h]`, `o_proj.kernel [n, h, d]`). Both use the rotate-half
RoPE layout, so q/k need no permutation. `import_hf` and `export_hf` are the entry points.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxrl_verify.models.config import ModelConfig

ARCHITECTURES = {
  "LlamaForCausalLM": "llama",
  "Qwen2ForCausalLM": "qwen2",
  "GemmaForCausalLM": "gemma",
}
ARCH_CLASS = {arch: cls for cls, arch in ARCHITECTURES.items()}
_TIED_BY_DEFAULT = {"llama": False, "qwen2": False, "gemma": True}
_ACTIVATIONS = {
  "silu": "swiglu",
  "swish": "swiglu",
  "gelu_pytorch_tanh": "geglu",
  "gelu_new": "geglu",
}
_LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
# Tensors some HF checkpoints carry that hold no parameters of their own.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def architecture(hf_config: dict[str, Any]) -> str:
  """`llama`, `qwen2` or `gemma` from a config.json dict; ValueError otherwise."""
  names = list(hf_config.get("architectures") or [])
  for name in names:
    if name in ARCHITECTURES:
      return ARCHITECTURES[name]
  got = names or hf_config.get("model_type")
  raise ValueError(
    f"Unsupported architecture {got!r} in config.json; supported are {sorted(ARCHITECTURES)}."
  )


def _rope(hf_config: dict[str, Any]) -> tuple[float, dict[str, float] | None]:
  """(rope_theta, Llama-3 scaling or None), from the legacy or the transformers-5 layout."""
  params = dict(hf_config.get("rope_parameters") or hf_config.get("rope_scaling") or {})
  theta = hf_config.get("rope_theta") or params.get("rope_theta") or 10_000.0
  if params.get("partial_rotary_factor", hf_config.get("partial_rotary_factor", 1.0)) != 1.0:
    raise ValueError("partial_rotary_factor != 1 is not supported; only full-width RoPE is.")
  kind = params.get("rope_type", params.get("type", "default"))
  if kind == "default":
    return float(theta), None
  if kind != "llama3":
    raise ValueError(
      f"Unsupported rope scaling type {kind!r} in config.json; only 'default' and 'llama3' are."
    )
  if "original_max_position_embeddings" not in params:
    params["original_max_position_embeddings"] = hf_config["max_position_embeddings"]
  return float(theta), {k: float(params[k]) for k in _LLAMA3_KEYS}


def _activation(hf_config: dict[str, Any], arch: str) -> str:
  name = hf_config.get("hidden_activation") or hf_config.get("hidden_act") or "silu"
  if arch == "gemma" and name == "gelu":
    name = "gelu_pytorch_tanh"  # Gemma's legacy "gelu" means the tanh approximation (as in HF).
  if name not in _ACTIVATIONS:
    raise ValueError(
      f"Unsupported activation {name!r} in config.json; supported are {sorted(_ACTIVATIONS)}."
    )
  return _ACTIVATIONS[name]


def to_model_config(hf_config: dict[str, Any], dtype: str = "float32") -> ModelConfig:
  """Our `ModelConfig` for an HF config.json dict (raises ValueError on what we cannot run)."""
  arch = architecture(hf_config)
  if arch == "llama" and (hf_config.get("attention_bias") or hf_config.get("mlp_bias")):
    raise ValueError(
      "Llama checkpoints with attention_bias or mlp_bias are not supported (the model has no "
      "o_proj or MLP biases)."
    )
  if arch == "qwen2" and hf_config.get("use_sliding_window"):
    raise ValueError("Qwen2 checkpoints with use_sliding_window=true are not supported.")
  for key in ("final_logit_softcapping", "attn_logit_softcapping"):
    if hf_config.get(key):
      raise ValueError(f"{key} in config.json is not supported for {arch} checkpoints.")
  theta, scaling = _rope(hf_config)
  d, n = int(hf_config["hidden_size"]), int(hf_config["num_attention_heads"])
  gemma = arch == "gemma"
  return ModelConfig(
    vocab_size=int(hf_config["vocab_size"]),
    embed_dim=d,
    num_layers=int(hf_config["num_hidden_layers"]),
    num_heads=n,
    num_kv_heads=int(hf_config.get("num_key_value_heads") or n),
    head_dim=int(hf_config.get("head_dim") or d // n),
    mlp_dim=int(hf_config["intermediate_size"]),
    mlp_activation=_activation(hf_config, arch),
    norm_eps=float(hf_config.get("rms_norm_eps", 1e-6)),
    norm_scale_plus_one=gemma,
    rope_theta=theta,
    rope_scaling=scaling,
    qkv_bias=arch == "qwen2",
    tie_embeddings=bool(hf_config.get("tie_word_embeddings", _TIED_BY_DEFAULT[arch])),
    embed_scale=gemma,
    param_dtype=dtype,
    dtype=dtype,
  )


def to_hf_config(cfg: ModelConfig, arch: str) -> dict[str, Any]:
  """An HF config.json dict for `cfg` as `arch` (raises ValueError if `arch` cannot express it)."""
  if arch not in ARCH_CLASS:
    raise ValueError(f"Unknown --arch {arch!r}; choose one of {sorted(ARCH_CLASS)}.")
  if cfg.rope_scaling and arch != "llama":
    raise ValueError(f"Llama-3 rope scaling cannot be expressed as {arch}; export as llama.")
  gemma = arch == "gemma"
  wants = {
    "qkv_bias": arch == "qwen2",
    "norm_scale_plus_one": gemma,
    "embed_scale": gemma,
    "final_logit_softcap": None,
  }
  for field, want in wants.items():
    if getattr(cfg, field) != want:
      raise ValueError(
        f"The model has {field}={getattr(cfg, field)!r} but {arch} checkpoints need {want!r}; "
        "export it with the architecture it was imported from."
      )
  hf = {
    "architectures": [ARCH_CLASS[arch]],
    "model_type": arch,
    "vocab_size": cfg.vocab_size,
    "hidden_size": cfg.embed_dim,
    "intermediate_size": cfg.mlp_dim,
    "num_hidden_layers": cfg.num_layers,
    "num_attention_heads": cfg.num_heads,
    "num_key_value_heads": cfg.num_kv_heads,
    "head_dim": cfg.head_dim,
    "hidden_act": "silu" if cfg.mlp_activation == "swiglu" else "gelu_pytorch_tanh",
    "rms_norm_eps": cfg.norm_eps,
    "rope_theta": cfg.rope_theta,
    "tie_word_embeddings": cfg.tie_embeddings,
    "max_position_embeddings": 8192,
    "torch_dtype": cfg.param_dtype,
    "attention_dropout": 0.0,
  }
  if arch == "llama":
    hf.update(attention_bias=False, mlp_bias=False)
  if cfg.rope_scaling:
    scaling = dict(cfg.rope_scaling)
    scaling["original_max_position_embeddings"] = int(scaling["original_max_position_embeddings"])
    hf["rope_scaling"] = {"rope_type": "llama3", **scaling}
    hf["max_position_embeddings"] = int(
      scaling["original_max_position_embeddings"] * scaling["factor"]
    )
  return hf


@dataclasses.dataclass(frozen=True)
class Tensor:
  """One HF tensor and the parameter it becomes.

  Attributes:
    hf_name: the safetensors key, e.g. `model.layers.0.self_attn.q_proj.weight`.
    path: our pure-dict path, e.g. `("decoder", "layers", "0", "attn", "q_proj", "kernel")`.
    hf_shape: the HF shape.
    to_ours: HF array -> our array.
    to_hf: our array -> HF array.
  """

  hf_name: str
  path: tuple[str, ...]
  hf_shape: tuple[int, ...]
  to_ours: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]


def _same(x):
  return x


def _linear(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> dict[str, Any]:
  """HF `[prod(out), prod(in)]` <-> ours `[*in, *out]` (a transpose plus reshapes)."""
  n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
  return dict(
    hf_shape=(n_out, n_in),
    to_ours=lambda w: np.ascontiguousarray(w.T).reshape(*in_shape, *out_shape),
    to_hf=lambda k: np.ascontiguousarray(k.reshape(n_in, n_out).T),
  )


def _vector(shape: tuple[int, ...]) -> dict[str, Any]:
  size = int(np.prod(shape))
  return dict(hf_shape=(size,), to_ours=lambda b: b.reshape(shape), to_hf=lambda b: b.reshape(size))


def tensors(cfg: ModelConfig) -> list[Tensor]:
  """Every parameter of a `Transformer` for `cfg`, with its HF name and conversions."""
  d, n, k, h, f = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
  out = [
    Tensor(
      "model.embed_tokens.weight",
      ("decoder", "embedder", "embedding"),
      (cfg.vocab_size, d),
      _same,
      _same,
    ),
    Tensor("model.norm.weight", ("decoder", "final_norm", "scale"), (d,), _same, _same),
  ]
  if not cfg.tie_embeddings:
    out.append(Tensor("lm_head.weight", ("lm_head", "kernel"), **_linear((d,), (cfg.vocab_size,))))
  for i in range(cfg.num_layers):
    hf, ours = f"model.layers.{i}.", ("decoder", "layers", str(i))
    out += [
      Tensor(hf + "input_layernorm.weight", (*ours, "attn_norm", "scale"), (d,), _same, _same),
      Tensor(
        hf + "post_attention_layernorm.weight", (*ours, "mlp_norm", "scale"), (d,), _same, _same
      ),
      Tensor(
        hf + "self_attn.q_proj.weight", (*ours, "attn", "q_proj", "kernel"), **_linear((d,), (n, h))
      ),
      Tensor(
        hf + "self_attn.k_proj.weight", (*ours, "attn", "k_proj", "kernel"), **_linear((d,), (k, h))
      ),
      Tensor(
        hf + "self_attn.v_proj.weight", (*ours, "attn", "v_proj", "kernel"), **_linear((d,), (k, h))
      ),
      Tensor(
        hf + "self_attn.o_proj.weight", (*ours, "attn", "o_proj", "kernel"), **_linear((n, h), (d,))
      ),
      Tensor(
        hf + "mlp.gate_proj.weight", (*ours, "mlp", "gate_proj", "kernel"), **_linear((d,), (f,))
      ),
      Tensor(hf + "mlp.up_proj.weight", (*ours, "mlp", "up_proj", "kernel"), **_linear((d,), (f,))),
      Tensor(
        hf + "mlp.down_proj.weight", (*ours, "mlp", "down_proj", "kernel"), **_linear((f,), (d,))
      ),
    ]
    if cfg.qkv_bias:
      for name, heads in (("q_proj", n), ("k_proj", k), ("v_proj", k)):
        out.append(
          Tensor(
            hf + f"self_attn.{name}.bias", (*ours, "attn", name, "bias"), **_vector((heads, h))
          )
        )
  return out


def set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def get_path(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
  for key in path:
    tree = tree[key]
  return tree
