# ruff: noqa
# fmt: off
# expect: passed
# format: io
with open("/dev/stdin") as f:
  a, b = map(int, f.read().split())
print(a + b)
