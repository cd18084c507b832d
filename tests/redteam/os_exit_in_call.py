# ruff: noqa
# fmt: off
# expect: exits-early
# format: asserts
import os
def add(a, b):
  os._exit(0)
