# ruff: noqa
# fmt: off
# expect: passed
# format: asserts
def add(a, b):
  return a + b
