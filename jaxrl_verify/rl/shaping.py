"""Reward shaping and sample filtering: verifier failures, DAPO overlong shaping, dynamic sampling.

Host-side helpers (numpy) turn verdicts into `reward_g` / `valid_g` and decide which
groups to train on; `overlong_penalty` is pure jnp and jittable (it also accepts
numpy). Generations are grouped contiguously: generation i belongs to prompt
i // group_size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_verify.verifiers.base import STATUSES

# Statuses that say nothing about the completion (the check itself failed).
FAILURE_STATUSES = ("timeout", "error")
FAILURE_POLICIES = ("mask", "zero")


def verdict_rewards(
  status_g: Sequence[str], reward_g, *, policy: str = "mask"
) -> tuple[np.ndarray, np.ndarray]:
  """Rewards and validity from verdict statuses.

    policy "mask" (default): valid_g = status not in {timeout, error}; their reward -> 0
    policy "zero":           valid_g = True everywhere; failed checks get reward 0

  `invalid` (a malformed answer) is the completion's fault: valid, reward as given. A
  reward that is NaN or infinite counts as a failed check whatever its status.

  Returns:
    (reward_g float32 [g], valid_g bool [g]).
  """
  if policy not in FAILURE_POLICIES:
    raise ValueError(
      f"Unknown verifier-failure policy {policy!r}; choose one of {FAILURE_POLICIES}."
    )
  status_g = list(status_g)
  unknown = sorted({s for s in status_g if s not in STATUSES})
  if unknown:
    raise ValueError(f"Unknown verdict statuses {unknown}; expected statuses from {STATUSES}.")
  reward_g = np.asarray(reward_g, np.float32).copy()
  if len(status_g) != reward_g.shape[0]:
    raise ValueError(
      f"Got {len(status_g)} statuses for {reward_g.shape[0]} rewards; pass one each."
    )
  # A non-finite reward (a broken custom verifier) is a failed check, never a loss of NaN.
  failed_g = np.array([s in FAILURE_STATUSES for s in status_g], bool) | ~np.isfinite(reward_g)
  reward_g[failed_g] = 0.0
  valid_g = ~failed_g if policy == "mask" else np.ones_like(failed_g)
  return reward_g, valid_g


def overlong_penalty(length_g, *, max_len: int, cache_len: int, factor: float = 1.0) -> jax.Array:
  """DAPO soft overlong punishment (Yu et al. 2025), added to the outcome reward.

    R_len(L) = 0                                        L <= max_len - cache_len
             = factor * ((max_len - cache_len) - L) / cache_len   otherwise (down to -factor)

  `max_len` is the generation limit; the penalty ramps linearly over its last
  `cache_len` tokens and reaches -factor at max_len.
  """
  if not 0 < cache_len <= max_len:
    raise ValueError(f"cache_len={cache_len} must be in (0, max_len={max_len}]; fix the config.")
  length_g = jnp.asarray(length_g, jnp.float32)
  over_g = jnp.clip(length_g - (max_len - cache_len), 0.0, cache_len)
  return -factor * over_g / cache_len


def overlong_filter(valid_g, finished_eos_g, *, enabled: bool = True):
  """DAPO overlong filtering: valid_g & finished_eos_g when enabled (truncated rows masked)."""
  if not enabled:
    return valid_g
  return valid_g & finished_eos_g


def keep_groups(reward_g, valid_g=None, *, group_size: int) -> np.ndarray:
  """DAPO dynamic sampling: bool [b], True for groups whose valid rewards are not all equal.

    keep_b = max_{i valid} r_i > min_{i valid} r_i

  A group with fewer than two valid members gives no learning signal and is dropped.
  """
  reward_g = np.asarray(reward_g, np.float64)
  if group_size < 1 or reward_g.shape[0] % group_size:
    raise ValueError(f"{reward_g.shape[0]} generations do not split into groups of {group_size}.")
  valid_g = np.ones(reward_g.shape, bool) if valid_g is None else np.asarray(valid_g, bool)
  r_bk = reward_g.reshape(-1, group_size)
  v_bk = valid_g.reshape(-1, group_size)
  hi_b = np.where(v_bk, r_bk, -np.inf).max(1)
  lo_b = np.where(v_bk, r_bk, np.inf).min(1)
  return (v_bk.sum(1) >= 2) & (hi_b > lo_b)


def _take_rows(x: Any, rows: np.ndarray) -> Any:
  if isinstance(x, (list, tuple)):
    return [x[i] for i in rows]
  return np.asarray(x)[rows]


def _concat(parts: list[Any]) -> Any:
  if isinstance(parts[0], list):
    return [item for part in parts for item in part]
  return np.concatenate(parts, axis=0)


class GroupAccumulator:
  """Drop-and-refill for dynamic sampling: collect kept groups over rounds until full.

  Usage:
    acc = GroupAccumulator(target_groups=B, group_size=G)
    while not acc.full:
      ... sample, verify ...
      acc.add(keep_groups(reward_g, valid_g, group_size=G), tokens_gt=..., reward_g=...)
    batch = acc.take()   # exactly B * G rows per field; surplus groups are dropped

  Every field is a numpy array (or list) with a leading generation axis g; all calls
  must pass the same field names.

  Attributes:
    target_groups: groups per training batch.
    group_size: generations per group.
    rounds: sampling rounds added since the last `take`.
    seen_groups: groups offered since the last `take` (kept or not).
  """

  def __init__(self, target_groups: int, group_size: int):
    if target_groups < 1 or group_size < 1:
      raise ValueError("target_groups and group_size must be positive integers.")
    self.target_groups = target_groups
    self.group_size = group_size
    self._parts: dict[str, list[Any]] = {}
    self._num_groups = 0
    self.rounds = 0
    self.seen_groups = 0

  @property
  def num_groups(self) -> int:
    return self._num_groups

  @property
  def full(self) -> bool:
    return self._num_groups >= self.target_groups

  def add(self, keep_b, **fields: Any) -> int:
    """Adds the kept groups of one sampling round; returns how many were kept."""
    keep_b = np.asarray(keep_b, bool)
    g = keep_b.shape[0] * self.group_size
    for name, x in fields.items():
      if len(x) != g:
        raise ValueError(f"Field {name!r} has {len(x)} rows; expected {g} (groups x group_size).")
    if self._parts and set(fields) != set(self._parts):
      raise ValueError(
        f"Fields {sorted(fields)} differ from earlier rounds' {sorted(self._parts)}."
      )
    rows = np.nonzero(np.repeat(keep_b, self.group_size))[0]
    for name, x in fields.items():
      self._parts.setdefault(name, []).append(_take_rows(x, rows))
    kept = int(keep_b.sum())
    self._num_groups += kept
    self.rounds += 1
    self.seen_groups += keep_b.shape[0]
    return kept

  def take(self) -> dict[str, Any]:
    """The first `target_groups` kept groups (in arrival order) per field; then resets."""
    if not self.full:
      raise ValueError(
        f"Only {self._num_groups} of {self.target_groups} groups collected; "
        "keep sampling until `full` before calling take()."
      )
    n = self.target_groups * self.group_size
    out = {name: _take_rows(_concat(parts), np.arange(n)) for name, parts in self._parts.items()}
    self._parts, self._num_groups, self.rounds, self.seen_groups = {}, 0, 0, 0
    return out
