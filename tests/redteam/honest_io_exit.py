# ruff: noqa
# fmt: off
# expect: passed
# format: io
import sys
print(sum(map(int, input().split())))
sys.exit(0)
