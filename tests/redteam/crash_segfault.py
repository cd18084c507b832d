# ruff: noqa
# fmt: off
# expect: runtime-error
# format: asserts
# A segfault (as deep C recursion causes) is a crash, not a hack: still reward 0.
import faulthandler
def add(a, b):
  faulthandler._sigsegv()
