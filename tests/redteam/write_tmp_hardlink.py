# ruff: noqa
# fmt: off
# expect: writes-files
# format: asserts
import os
def add(a, b):
  # A second name in /tmp for a file outside it (opened for writing under that name later).
  try:
    os.link(os.__file__, '/tmp/os.py')
  except OSError:
    pass
  return a + b
