"""A tiny name -> function registry, shared by the RL maths modules.

Configs choose an advantage estimator, a KL estimator or a loss aggregation by
string; the registry turns the string into the function and, for a name it does
not know, says which names it does know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
  """Maps names to functions of one kind (e.g. "advantage estimator").

  Attributes:
    kind: what the registered functions are, used in error messages.
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._fns: dict[str, F] = {}

  def register(self, name: str) -> Callable[[F], F]:
    """Decorator registering a function under `name`; names must be unique."""

    def wrap(fn: F) -> F:
      if name in self._fns and self._fns[name] is not fn:
        raise ValueError(f"A {self.kind} named {name!r} is already registered; pick another name.")
      self._fns[name] = fn
      return fn

    return wrap

  def get(self, name: str) -> F:
    """The function registered as `name`; a ValueError listing known names otherwise."""
    if name not in self._fns:
      raise ValueError(
        f"Unknown {self.kind} {name!r}; choose one of {self.names()} "
        f"or register yours with @<REGISTRY>.register(name)."
      )
    return self._fns[name]

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
