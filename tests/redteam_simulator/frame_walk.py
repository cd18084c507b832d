# ruff: noqa
# fmt: off
# expect: no-skill
import sys
def step(state, dt):
  f = sys._getframe()
  while f.f_back is not None:
    f = f.f_back
    print(sorted(f.f_locals))
  return list(state)
