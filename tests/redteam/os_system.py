# ruff: noqa
# fmt: off
# expect: forks
# format: check
import os
def add(a, b):
  os.system('echo PASS')
  return a + b
