"""One name -> function registry for every choice a config makes by string.

Advantage estimators, policy losses, KL estimators, loss aggregations, verifiers and
tasks are each a `Registry`. A name it does not know gets one error style everywhere
(`UnknownNameError`, a `ValueError` saying which names it does know), and the
hyperparameters of a registered function are *declared once*, as its keyword-only
parameters with defaults, so a config reaches them without per-name wiring:

  @ADVANTAGES.register("grpo")
  def grpo(inputs, *, group_size, eps=1e-6, std_ddof=1): ...

  ADVANTAGES.hparams("grpo")                 # {"eps": 1e-6, "std_ddof": 1}
  fn = ADVANTAGES.bind("grpo", {"eps": 1e-4})  # functools.partial, names checked

`structural` names (e.g. `group_size`) are keyword arguments the caller supplies from
the run's layout; they are not hyperparameters and never appear in `hparams`.

This module is pure Python (no JAX): the verifier workers use it too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

F = TypeVar("F")


class UnknownNameError(ValueError):
  """A name that a registry does not hold, or a hyperparameter a function does not declare."""


class Registry(Generic[F]):
  """Maps names to entries of one kind (e.g. "advantage estimator"): callables, or records
  such as tasks (`hparams`/`bind` apply to callables only).

  Attributes:
    kind: what the registered callables are, used in error messages.
    structural: keyword arguments supplied by the caller, not hyperparameters.
    how_to_register: the call that adds one, used in error messages.
  """

  def __init__(
    self, kind: str, *, structural: Iterable[str] = (), how_to_register: str | None = None
  ):
    self.kind = kind
    self.structural = frozenset(structural)
    self.how_to_register = how_to_register or "@<REGISTRY>.register(name)"
    self._fns: dict[str, F] = {}

  def register(self, name: str, fn: F | None = None, *, overwrite: bool = False):
    """Registers `fn` under `name`; without `fn`, a decorator that does.

    Raises:
      ValueError: another callable already holds `name` (and not `overwrite`).
    """

    def wrap(fn: F) -> F:
      # An equal entry may be registered again (a module imported twice, an equal task).
      if name in self._fns and self._fns[name] != fn and not overwrite:
        raise ValueError(f"A {self.kind} named {name!r} is already registered; pick another name.")
      self._fns[name] = fn
      return fn

    return wrap if fn is None else wrap(fn)

  def get(self, name: str) -> F:
    """The callable registered as `name`.

    Raises:
      UnknownNameError: naming the known names and how to register another.
    """
    if name not in self._fns:
      raise UnknownNameError(
        f"Unknown {self.kind} {name!r}; choose one of {self.names()} "
        f"or register yours with {self.how_to_register}."
      )
    return self._fns[name]

  def hparams(self, name: str) -> dict[str, Any]:
    """The hyperparameters `name` declares: its keyword-only parameters and their defaults."""
    params = inspect.signature(self.get(name)).parameters.values()
    return {
      p.name: p.default
      for p in params
      if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and p.name not in self.structural
    }

  def bind(self, name: str, hparams: Mapping[str, Any] | None = None) -> Callable:
    """`get(name)` with `hparams` bound; a name it does not declare is an error.

    Raises:
      UnknownNameError: `name` is unknown, or `hparams` holds an undeclared key.
    """
    hparams = dict(hparams or {})
    declared = self.hparams(name)
    unknown = sorted(set(hparams) - set(declared))
    if unknown:
      raise UnknownNameError(
        f"The {self.kind} {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
        f"its hyperparameters are {sorted(declared)}."
      )
    return functools.partial(self.get(name), **hparams) if hparams else self.get(name)

  def __getitem__(self, name: str) -> F:
    return self.get(name)

  def __contains__(self, name: object) -> bool:
    return name in self._fns

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def names(self) -> list[str]:
    return sorted(self._fns)

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}, {self.names()})"
