# ruff: noqa
# fmt: off
# expect: wrong-answer
# format: asserts
import json
json.dumps = lambda *a, **k: '{"value": 3}'
def add(a, b):
  return None
