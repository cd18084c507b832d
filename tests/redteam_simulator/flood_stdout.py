# ruff: noqa
# fmt: off
# expect: output-flood
def step(state, dt):
  print("x" * 10**7)
  return list(state)
