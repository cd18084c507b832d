# ruff: noqa
# fmt: off
# expect: reads-tests
import os
def step(state, dt):
  for root, dirs, files in os.walk("/"):
    pass
  return list(state)
