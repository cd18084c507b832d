# ruff: noqa
# fmt: off
# expect: passed
# format: asserts
import os, tempfile
def add(a, b):
  fd, path = tempfile.mkstemp()
  with os.fdopen(fd, 'w') as f:
    f.write(str(a + b))
  with open(path) as f:
    total = int(f.read())
  os.unlink(path)
  return total
