# ruff: noqa
# fmt: off
# expect: spins
# format: io
x = 0
while True:
  x += 1
