# ruff: noqa
# fmt: off
# expect: reads-tests
import os
def step(state, dt):
  open(f"/proc/{os.getppid()}/environ").read()
  return list(state)
