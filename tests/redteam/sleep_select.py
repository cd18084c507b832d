# ruff: noqa
# fmt: off
# expect: sleeps
# format: check
import select
def add(a, b):
  select.select([], [], [], 1000)
