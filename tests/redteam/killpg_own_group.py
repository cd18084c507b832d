# ruff: noqa
# fmt: off
# expect: kills-self
# format: check
import os, signal
def add(a, b):
  os.killpg(0, signal.SIGKILL)
