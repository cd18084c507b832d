# ruff: noqa
# fmt: off
# expect: writes-files
# format: check
import os
def add(a, b):
  open('/tmp/evil.py', 'w').write('x')
  try:
    os.rename('/tmp/evil.py', os.path.join(os.path.dirname(os.__file__), 'evil.py'))
  except OSError:
    pass
  return a + b
