# ruff: noqa
# fmt: off
# expect: writes-files
# format: asserts
import os
def add(a, b):
  if not os.path.lexists('/tmp/out'):
    os.symlink('/usr/lib', '/tmp/out')
  try:
    open('/tmp/out/evil.py', 'w').write('x')
  except OSError:
    pass
  return a + b
