# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
import os
FILES = os.listdir('/')
def add(a, b):
  return a + b
