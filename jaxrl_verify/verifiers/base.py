"""The verifier contract: a pure function from text to a `Verdict`.

A verifier takes a completion, a reference and task-specific fields and returns a
`Verdict`. It knows nothing about training, JAX or the pool that runs it: shaping
(penalties, masking, step rewards) lives in `jaxrl_verify.rl`. Verifiers are
registered by name so configs and the scoring CLI can pick them with a string.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from jaxrl_verify.registry import Registry

Status = Literal["ok", "wrong", "invalid", "timeout", "error"]
STATUSES: tuple[Status, ...] = ("ok", "wrong", "invalid", "timeout", "error")


@dataclasses.dataclass(frozen=True)
class Verdict:
  """The outcome of checking one completion.

  Attributes:
    status: `ok` (correct), `wrong` (a well-formed answer that is incorrect),
      `invalid` (no single well-formed answer: empty, hedged, non-answer),
      `timeout` (the check ran past its deadline), `error` (the check itself
      failed: a crash, an exception). `timeout` and `error` say nothing about the
      completion and are masked out of the loss by default.
    reward: scalar reward; 1.0 for `ok`, 0.0 otherwise unless the verifier gives
      partial credit.
    latency_s: wall-clock seconds spent checking (filled in by whoever timed it).
    reason: a short human-readable explanation (at most a line).
    step_rewards: optional per-step rewards for process supervision.
    extras: optional verifier-specific scalar fields (e.g. `hidden_reward`).
  """

  status: Status
  reward: float
  latency_s: float = 0.0
  reason: str = ""
  step_rewards: tuple[float, ...] | None = None
  extras: Mapping[str, float] | None = None

  def __post_init__(self):
    if self.status not in STATUSES:
      raise ValueError(f"Verdict status {self.status!r} is not one of {STATUSES}.")

  def to_json(self) -> dict[str, Any]:
    out: dict[str, Any] = {
      "status": self.status,
      "reward": self.reward,
      "latency_s": self.latency_s,
      "reason": self.reason,
    }
    if self.step_rewards is not None:
      out["step_rewards"] = list(self.step_rewards)
    if self.extras:
      out.update(self.extras)
    return out


class Verifier(Protocol):
  """`verify(completion, reference, **fields) -> Verdict`; must be picklable by name."""

  def __call__(self, completion: str, reference: Any, **fields: Any) -> Verdict: ...


VERIFIERS: Registry = Registry(
  "verifier", how_to_register="@jaxrl_verify.verifiers.base.register(name)"
)


def register(name: str) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
  """Decorator registering a verifier function under `name`."""
  return VERIFIERS.register(name)


def get(name: str) -> Callable[..., Verdict]:
  """The verifier registered as `name`, importing the built-in ones on first use.

  Raises:
    UnknownNameError: (a ValueError) naming the known verifiers.
  """
  _import_builtin()
  return VERIFIERS.get(name)


def names() -> list[str]:
  _import_builtin()
  return VERIFIERS.names()


def _import_builtin() -> None:
  # Imported lazily so that `base` stays import-light for the pool workers.
  import importlib

  for module in ("math", "code", "countdown", "simulator"):
    try:
      importlib.import_module(f"jaxrl_verify.verifiers.{module}")
    except ModuleNotFoundError as e:
      if e.name != f"jaxrl_verify.verifiers.{module}":
        raise
