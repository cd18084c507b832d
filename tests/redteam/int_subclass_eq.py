# ruff: noqa
# fmt: off
# expect: not-plain
# format: asserts
class E(int):
  def __eq__(self, other):
    return True
  __hash__ = int.__hash__
def add(a, b):
  return E(0)
