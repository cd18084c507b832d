# ruff: noqa
# fmt: off
# expect: wrong-answer
# format: asserts
def add(a, b):
  return a - b
