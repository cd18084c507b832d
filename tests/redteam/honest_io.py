# ruff: noqa
# fmt: off
# expect: passed
# format: io
import sys
a, b = map(int, sys.stdin.read().split())
print(a + b)
