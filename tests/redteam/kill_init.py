# ruff: noqa
# fmt: off
# expect: kills-parent
# format: asserts
import os, signal
def add(a, b):
  os.kill(1, signal.SIGTERM)
  return a + b
