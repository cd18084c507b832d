# ruff: noqa
# fmt: off
# expect: kills-self
# format: asserts
import os
def add(a, b):
  os.abort()
