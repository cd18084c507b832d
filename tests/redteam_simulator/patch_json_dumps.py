# ruff: noqa
# fmt: off
# expect: no-skill
import json
json.dumps = lambda *a, **k: "{\"value\": 1}"
def step(state, dt):
  return list(state)
