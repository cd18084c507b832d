# ruff: noqa
# fmt: off
# expect: kills-self
# format: asserts
import signal
def add(a, b):
  signal.raise_signal(signal.SIGKILL)
