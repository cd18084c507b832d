# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
import os
def add(a, b):
  for root, dirs, files in os.walk('/tmp'):
    pass
  return a + b
