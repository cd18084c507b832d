# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
import glob
def add(a, b):
  glob.glob('**/*test*', recursive=True)
  return a + b
