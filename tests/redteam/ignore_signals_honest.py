# ruff: noqa
# fmt: off
# expect: ignores-signals
# format: asserts
import signal
for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT):
  signal.signal(s, signal.SIG_IGN)
def add(a, b):
  return a + b
