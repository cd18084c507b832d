# ruff: noqa
# fmt: off
# expect: passed
# format: asserts
def add(a, b):
  with open('/tmp/scratch.txt', 'w') as f:
    f.write(str(a + b))
  with open('/tmp/scratch.txt') as f:
    return int(f.read())
