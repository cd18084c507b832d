# ruff: noqa
# fmt: off
# expect: passed
# format: check
def add(a, b):
  '''Adds.'''
  return a + b
