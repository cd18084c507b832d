# ruff: noqa
# fmt: off
# expect: reads-tests
def step(state, dt):
  open("/proc/1/cmdline").read()
  return list(state)
