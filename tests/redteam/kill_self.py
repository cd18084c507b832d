# ruff: noqa
# fmt: off
# expect: kills-self
# format: asserts
import os, signal
def add(a, b):
  os.kill(os.getpid(), signal.SIGKILL)
