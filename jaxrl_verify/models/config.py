"""Model configuration and named presets.

One frozen dataclass covers the Llama, Qwen2 and Gemma families; presets carry the
real shapes of public checkpoints so that configs can say `model.preset = "qwen2.5-1.5b"`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

MLP_ACTIVATIONS = ("swiglu", "geglu")
REMAT_POLICIES = ("none", "full", "dots")
DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Shape and numerics of a decoder-only transformer.

  Attributes:
    vocab_size: number of token ids.
    embed_dim: model width `d`.
    num_layers: decoder blocks.
    num_heads: query heads `n`.
    num_kv_heads: key/value heads `k`; `n % k == 0` (k == n: MHA, k == 1: MQA).
    head_dim: width of one head `h`.
    mlp_dim: hidden width of the gated MLP.
    mlp_activation: `swiglu` (silu gate, Llama/Qwen2) or `geglu` (tanh-gelu gate, Gemma).
    norm_eps: RMSNorm epsilon.
    norm_scale_plus_one: Gemma's RMSNorm multiplies by `1 + w` (weights stored around 0).
    rope_theta: RoPE base frequency.
    rope_scaling: optional Llama-3 style frequency scaling, a dict with `factor`,
      `low_freq_factor`, `high_freq_factor`, `original_max_position_embeddings`.
    qkv_bias: biases on the q/k/v projections (Qwen2).
    tie_embeddings: the output projection is the transposed input embedding.
    embed_scale: multiply input embeddings by sqrt(embed_dim) (Gemma).
    final_logit_softcap: if set, logits = cap * tanh(logits / cap).
    num_valid_tokens: if set, ids >= this are padding rows of a vocabulary rounded
      up for sharding (or beyond the tokenizer of an imported model): their logits
      are -1e30, so they are never sampled and carry no probability mass.
    param_dtype: storage dtype of parameters.
    dtype: compute dtype of activations and matmuls (logits are returned in float32).
    remat: rematerialisation of each block in the backward pass: `none`, `full`
      (recompute everything) or `dots` (save matmul outputs only).
  """

  vocab_size: int
  embed_dim: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  mlp_activation: str = "swiglu"
  norm_eps: float = 1e-6
  norm_scale_plus_one: bool = False
  rope_theta: float = 10_000.0
  rope_scaling: dict[str, float] | None = None
  qkv_bias: bool = False
  tie_embeddings: bool = False
  embed_scale: bool = False
  final_logit_softcap: float | None = None
  num_valid_tokens: int | None = None
  param_dtype: str = "float32"
  dtype: str = "float32"
  remat: str = "none"

  def __post_init__(self):
    positive = ("vocab_size", "embed_dim", "num_layers", "num_heads", "num_kv_heads")
    for name in positive + ("head_dim", "mlp_dim"):
      if int(getattr(self, name)) <= 0:
        raise ValueError(f"model.{name} must be a positive integer, got {getattr(self, name)}.")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
        f"model.num_heads ({self.num_heads}) must be a multiple of model.num_kv_heads "
        f"({self.num_kv_heads}); pick num_kv_heads among its divisors."
      )
    if self.mlp_activation not in MLP_ACTIVATIONS:
      raise ValueError(f"model.mlp_activation must be one of {MLP_ACTIVATIONS}.")
    if self.num_valid_tokens is not None and not 0 < self.num_valid_tokens <= self.vocab_size:
      raise ValueError(
        f"model.num_valid_tokens ({self.num_valid_tokens}) must be in (0, vocab_size="
        f"{self.vocab_size}]; set it to the tokenizer's vocabulary size or None."
      )
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"model.remat must be one of {REMAT_POLICIES}, got {self.remat!r}.")
    for name in ("param_dtype", "dtype"):
      if getattr(self, name) not in DTYPES:
        raise ValueError(f"model.{name} must be one of {DTYPES}, got {getattr(self, name)!r}.")

  @property
  def jnp_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def jnp_param_dtype(self):
    return jnp.dtype(self.param_dtype)

  def replace(self, **changes: Any) -> ModelConfig:
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError(f"Unknown model config keys {unknown}; known keys are {sorted(known)}.")
    return cls(**d)


_LLAMA32_ROPE_SCALING = {
  "factor": 32.0,
  "low_freq_factor": 1.0,
  "high_freq_factor": 4.0,
  "original_max_position_embeddings": 8192,
}

PRESETS: dict[str, ModelConfig] = {
  # A model small enough to compile in seconds; tests use it.
  "tiny": ModelConfig(
    vocab_size=128,
    embed_dim=32,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    mlp_dim=64,
  ),
  # The CPU experiments' policy (quickstart, PPO/GAE arithmetic): about 0.2M parameters
  # besides the embeddings, a minute or two of training on 2 cores.
  "mini": ModelConfig(
    vocab_size=128,
    embed_dim=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    mlp_dim=256,
  ),
  "bench": ModelConfig(
    vocab_size=512,
    embed_dim=256,
    num_layers=4,
    num_heads=4,
    num_kv_heads=2,
    head_dim=64,
    mlp_dim=1024,
  ),
  "qwen2.5-0.5b": ModelConfig(
    vocab_size=151_936,
    embed_dim=896,
    num_layers=24,
    num_heads=14,
    num_kv_heads=2,
    head_dim=64,
    mlp_dim=4864,
    norm_eps=1e-6,
    rope_theta=1_000_000.0,
    qkv_bias=True,
    tie_embeddings=True,
    param_dtype="bfloat16",
    dtype="bfloat16",
  ),
  "qwen2.5-1.5b": ModelConfig(
    vocab_size=151_936,
    embed_dim=1536,
    num_layers=28,
    num_heads=12,
    num_kv_heads=2,
    head_dim=128,
    mlp_dim=8960,
    norm_eps=1e-6,
    rope_theta=1_000_000.0,
    qkv_bias=True,
    tie_embeddings=True,
    param_dtype="bfloat16",
    dtype="bfloat16",
  ),
  "qwen2.5-7b": ModelConfig(
    vocab_size=152_064,
    embed_dim=3584,
    num_layers=28,
    num_heads=28,
    num_kv_heads=4,
    head_dim=128,
    mlp_dim=18_944,
    norm_eps=1e-6,
    rope_theta=1_000_000.0,
    qkv_bias=True,
    tie_embeddings=False,
    param_dtype="bfloat16",
    dtype="bfloat16",
  ),
  "llama-3.2-1b": ModelConfig(
    vocab_size=128_256,
    embed_dim=2048,
    num_layers=16,
    num_heads=32,
    num_kv_heads=8,
    head_dim=64,
    mlp_dim=8192,
    norm_eps=1e-5,
    rope_theta=500_000.0,
    rope_scaling=_LLAMA32_ROPE_SCALING,
    tie_embeddings=True,
    param_dtype="bfloat16",
    dtype="bfloat16",
  ),
  "llama-3.2-3b": ModelConfig(
    vocab_size=128_256,
    embed_dim=3072,
    num_layers=28,
    num_heads=24,
    num_kv_heads=8,
    head_dim=128,
    mlp_dim=8192,
    norm_eps=1e-5,
    rope_theta=500_000.0,
    rope_scaling=_LLAMA32_ROPE_SCALING,
    tie_embeddings=True,
    param_dtype="bfloat16",
    dtype="bfloat16",
  ),
  "gemma-2b": ModelConfig(
    vocab_size=256_000,
    embed_dim=2048,
    num_layers=18,
    num_heads=8,
    num_kv_heads=1,
    head_dim=256,
    mlp_dim=16_384,
    mlp_activation="geglu",
    norm_eps=1e-6,
    norm_scale_plus_one=True,
    tie_embeddings=True,
    embed_scale=True,
    param_dtype="bfloat16",
    dtype="bfloat16",
  ),
}


def get_preset(name: str, **overrides: Any) -> ModelConfig:
  """The preset called `name`, with optional field overrides."""
  if name not in PRESETS:
    raise ValueError(f"Unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
