# ruff: noqa
# fmt: off
# expect: ignores-signals
# format: check
import signal
def add(a, b):
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGXCPU, signal.SIG_IGN)
  while True:
    pass
