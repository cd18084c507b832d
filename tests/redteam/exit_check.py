# ruff: noqa
# fmt: off
# expect: exits-early
# format: check
import sys
def add(a, b):
  sys.exit(0)
