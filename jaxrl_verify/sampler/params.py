"""Sampling parameters: how the next token is drawn from the policy's logits."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """How tokens are drawn; validated on construction.

  `temperature`, `top_k` and `top_p` are *static*: they select a different compiled
  program, so changing them recompiles (once per distinct value; the compiled
  programs are cached). `max_new_tokens` and `seed` are runtime values and never
  recompile.

  Attributes:
    temperature: 0 is greedy (argmax); otherwise logits are divided by it.
    top_k: keep only the k most likely tokens (0: no limit).
    top_p: keep the smallest set of most likely tokens whose probability (after
      temperature and top-k, renormalised) reaches `top_p`; the top token is always
      kept (1.0: no limit).
    max_new_tokens: stop after this many tokens (None: the sampler's maximum; it may
      not exceed it).
    seed: the sampling seed, used when `generate` is given no explicit rng key.
  """

  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  max_new_tokens: int | None = None
  seed: int = 0

  def __post_init__(self):
    if not self.temperature >= 0.0:
      raise ValueError(
        f"temperature must be >= 0 (0 means greedy), got {self.temperature}; pass a "
        "non-negative number."
      )
    if int(self.top_k) != self.top_k or self.top_k < 0:
      raise ValueError(f"top_k must be an integer >= 0 (0 disables it), got {self.top_k}.")
    if not 0.0 < self.top_p <= 1.0:
      raise ValueError(f"top_p must be in (0, 1] (1 disables it), got {self.top_p}.")
    if self.max_new_tokens is not None and (
      int(self.max_new_tokens) != self.max_new_tokens or self.max_new_tokens < 1
    ):
      raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens}.")

  @property
  def greedy(self) -> bool:
    return self.temperature == 0.0

  @property
  def static_key(self) -> tuple[float, int, float]:
    """The fields that select a compiled program."""
    return (float(self.temperature), int(self.top_k), float(self.top_p))
