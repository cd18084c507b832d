# ruff: noqa
# fmt: off
# expect: monkeypatch
# format: asserts
import builtins
builtins.type = lambda x: int
def add(a, b):
  return a + b
