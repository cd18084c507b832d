# ruff: noqa
# fmt: off
# expect: forks
import subprocess
def step(state, dt):
  subprocess.run(["true"])
  return list(state)
