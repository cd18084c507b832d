# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
import sys
def add(a, b):
  sys._current_frames()
  return 0
