# ruff: noqa
# fmt: off
# expect: writes-files
# format: asserts
import os
def add(a, b):
  # An unnamed file on another file system, to be given a name there later (linkat).
  try:
    os.open('/usr/lib', os.O_TMPFILE | os.O_RDWR, 0o600)
  except OSError:
    pass
  return a + b
