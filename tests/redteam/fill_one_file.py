# ruff: noqa
# fmt: off
# expect: disk-fill
# format: asserts
def add(a, b):
  with open('/tmp/big', 'wb') as f:
    while True:
      f.write(b'0' * (1 << 20))
