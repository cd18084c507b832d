# ruff: noqa
# fmt: off
# expect: output-flood
# format: check
import sys
def add(a, b):
  while True:
    sys.stderr.write('y' * 65536)
