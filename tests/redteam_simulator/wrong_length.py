# ruff: noqa
# fmt: off
# expect: wrong-shape
def step(state, dt):
  return list(state)[:-1]
