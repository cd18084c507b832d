# ruff: noqa
# fmt: off
# expect: sleeps
import time
def step(state, dt):
  time.sleep(60)
  return list(state)
