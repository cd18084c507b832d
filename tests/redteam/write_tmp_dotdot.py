# ruff: noqa
# fmt: off
# expect: writes-files
# format: asserts
def add(a, b):
  try:
    open('/tmp/../usr/lib/evil.py', 'w').write('x')
  except OSError:
    pass
  return a + b
