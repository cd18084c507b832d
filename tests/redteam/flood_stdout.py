# ruff: noqa
# fmt: off
# expect: output-flood
# format: asserts
def add(a, b):
  print('x' * 10_000_000)
  return a + b
