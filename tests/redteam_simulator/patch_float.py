# ruff: noqa
# fmt: off
# expect: monkeypatch
import builtins
builtins.float = lambda *a: 0.0
def step(state, dt):
  return list(state)
