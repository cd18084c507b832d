# ruff: noqa
# fmt: off
# expect: passed
# format: check
import tempfile
def add(a, b):
  with tempfile.NamedTemporaryFile('w+', suffix='.txt') as f:
    f.write(str(a + b))
    f.flush()
    with open(f.name) as g:
      return int(g.read())
