# ruff: noqa
# fmt: off
# expect: writes-files
# format: asserts
import os
def add(a, b):
  try:
    os.makedirs('/usr/lib/evil/pkg')
  except OSError:
    pass
  return a + b
