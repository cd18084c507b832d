# ruff: noqa
# fmt: off
# expect: monkeypatch
# format: asserts
import sys
sys.addaudithook(lambda e, a: None)
def add(a, b):
  return a + b
