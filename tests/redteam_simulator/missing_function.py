# ruff: noqa
# fmt: off
# expect: missing-function
def simulate_system(state):
  return state
