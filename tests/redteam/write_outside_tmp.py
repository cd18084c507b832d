# ruff: noqa
# fmt: off
# expect: writes-files
# format: asserts
def add(a, b):
  open('/usr/lib/evil.py', 'w').write('x')
  return a + b
