# ruff: noqa
# fmt: off
# expect: monkeypatch
# format: asserts
import builtins
builtins.print = lambda *a, **k: None
def add(a, b):
  return a + b
