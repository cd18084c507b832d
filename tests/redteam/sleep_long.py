# ruff: noqa
# fmt: off
# expect: sleeps
# format: asserts
import time
def add(a, b):
  time.sleep(1000)
