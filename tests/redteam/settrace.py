# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
import sys
sys.settrace(lambda *a: None)
def add(a, b):
  return a + b
