# ruff: noqa
# fmt: off
# expect: missing-function
# format: check
def plus(a, b):
  return a + b
