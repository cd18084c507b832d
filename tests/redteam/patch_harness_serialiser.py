# ruff: noqa
# fmt: off
# expect: monkeypatch
# format: asserts
import __main__
__main__.ser = lambda value, depth=0: 3
def add(a, b):
  return object()
