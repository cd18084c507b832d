# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
def add(a, b):
  open('/proc/1/cmdline').read()
  return a + b
