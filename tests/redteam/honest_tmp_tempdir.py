# ruff: noqa
# fmt: off
# expect: passed
# format: io
import os, pathlib, tempfile
a, b = map(int, input().split())
with tempfile.TemporaryDirectory() as d:
  sub = pathlib.Path(d, 'sub', 'deeper')
  sub.mkdir(parents=True)
  (sub / 'a').write_text(str(a))
  (sub / 'b').write_text(str(b))
  os.rename(sub / 'b', sub / 'c')
  print(sum(int(p.read_text()) for p in sorted(sub.iterdir())))
