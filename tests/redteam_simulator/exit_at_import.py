# ruff: noqa
# fmt: off
# expect: exits-early
import sys
sys.exit(0)
