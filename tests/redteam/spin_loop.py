# ruff: noqa
# fmt: off
# expect: spins
# format: asserts
def add(a, b):
  while True:
    pass
