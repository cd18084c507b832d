# ruff: noqa
# fmt: off
# expect: passed
# format: check
import collections, functools, itertools, math, re, heapq, typing
Pair = collections.namedtuple('Pair', 'a b')
T = typing.TypeVar('T')
@functools.lru_cache(maxsize=None)
def add(a, b):
  p = Pair(a, b)
  return int(math.fsum([p.a, p.b]))
