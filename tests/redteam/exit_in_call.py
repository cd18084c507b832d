# ruff: noqa
# fmt: off
# expect: exits-early
# format: asserts
def add(a, b):
  raise SystemExit(0)
