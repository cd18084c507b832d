# ruff: noqa
# fmt: off
# expect: passed
# format: io
import tempfile
a, b = map(int, input().split())
with tempfile.TemporaryFile('w+') as f:
  f.write(str(a + b))
  f.seek(0)
  print(f.read())
