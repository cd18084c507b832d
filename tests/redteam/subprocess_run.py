# ruff: noqa
# fmt: off
# expect: forks
# format: asserts
import subprocess
def add(a, b):
  subprocess.run(['true'])
  return a + b
