# ruff: noqa
# fmt: off
# expect: kills-parent
# format: asserts
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
def add(a, b):
  return a + b
