# ruff: noqa
# fmt: off
# expect: forks
# format: asserts
import multiprocessing as mp
def add(a, b):
  p = mp.Process(target=print)
  p.start()
  return a + b
