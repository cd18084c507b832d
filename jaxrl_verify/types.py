"""Typed, shape-annotated records that flow between the pipeline stages.

Axis suffixes: `b` prompts, `g` generations (prompts x group), `t` completion
tokens, `p` prompt tokens, `d` model width, `v` vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from flax import struct


@dataclasses.dataclass
class PromptBatch:
  """A host-side batch of prompts, left-padded to a common length.

  Attributes:
    tokens_bp: int32 [b, p] prompt token ids, left-padded with the pad id.
    mask_bp: bool [b, p] True on real prompt tokens.
    prompts: the prompt strings (after the task template), length b.
    references: the reference answers, length b.
    fields: per-prompt verifier fields (e.g. `tests` for code), length b.
    ids: stable example ids, length b.
  """

  tokens_bp: np.ndarray
  mask_bp: np.ndarray
  prompts: list[str]
  references: list[Any]
  fields: list[dict[str, Any]]
  ids: list[str]

  def __post_init__(self):
    b = self.tokens_bp.shape[0]
    for name in ("prompts", "references", "fields", "ids"):
      if len(getattr(self, name)) != b:
        raise ValueError(f"PromptBatch.{name} has {len(getattr(self, name))} items, expected {b}.")


@struct.dataclass
class Rollout:
  """What the sampler returns for a batch of prompts (device arrays).

  Row i of every array belongs to prompt row i of the sampler's input; callers
  that sample a group per prompt repeat prompts before sampling.

  Attributes:
    tokens_gt: int32 [g, t] completion tokens; positions after the end are pad.
    mask_gt: bool [g, t] True on generated tokens, including the EOS/stop token.
    logp_gt: float32 [g, t] log-probability of each token under the policy
      distribution (softmax of the raw logits, temperature 1, no truncation);
      0 where `mask_gt` is False. Equal to the trainer's teacher-forced logprobs.
    sample_logp_gt: float32 [g, t] log-probability under the distribution actually
      sampled from (after temperature, top-k, top-p); 0 where masked.
    length_g: int32 [g] number of generated tokens (sum of `mask_gt`).
    finished_eos_g: bool [g] True when the row ended with EOS or a stop token,
      False when it hit the length limit (truncation, not termination).
  """

  tokens_gt: Any
  mask_gt: Any
  logp_gt: Any
  sample_logp_gt: Any
  length_g: Any
  finished_eos_g: Any

  def finish_reasons(self) -> list[str]:
    """Host-side `eos` / `length` per row."""
    return ["eos" if f else "length" for f in np.asarray(self.finished_eos_g)]
