# ruff: noqa
# fmt: off
# expect: passed
# format: asserts
import sys
sys.setrecursionlimit(5000)
def add(a, b):
  return a if b == 0 else (add(a + 1, b - 1) if b > 0 else add(a - 1, b + 1))
