# ruff: noqa
# fmt: off
# expect: no-skill
def step(state, dt):
  globals()["__jv_rollout__"] = lambda state, n, dt: [list(state)] * n
  return list(state)
