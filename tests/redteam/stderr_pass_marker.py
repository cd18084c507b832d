# ruff: noqa
# fmt: off
# expect: forged-verdict
# format: check
import sys
def add(a, b):
  sys.stderr.write('PASS\n')
  return 0
