# ruff: noqa
# fmt: off
# expect: no-skill
class Liar:
  def __float__(self):
    return 0.0 if False else self.v
  def __init__(self, v):
    self.v = float(v)
def step(state, dt):
  return [Liar(v) for v in state]
