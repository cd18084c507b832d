# ruff: noqa
# fmt: off
# expect: disk-fill
# format: asserts
def add(a, b):
  for i in range(64):
    try:
      with open(f'/tmp/f{i}', 'wb') as f:
        f.write(b'0' * (3 << 20))
    except OSError:
      pass
  return a + b
