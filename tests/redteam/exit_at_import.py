# ruff: noqa
# fmt: off
# expect: exits-early
# format: asserts
import sys
def add(a, b):
  return 0
sys.exit(0)
