# ruff: noqa
# fmt: off
# expect: runtime-error
def step(state, dt):
  raise RuntimeError("boom")
