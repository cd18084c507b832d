# ruff: noqa
# fmt: off
# expect: monkeypatch
# format: check
import builtins
def add(a, b):
  builtins.abs = lambda x: 0
  return a + b
