# ruff: noqa
# fmt: off
# expect: passed
# format: asserts
import os, shutil, tempfile
def add(a, b):
  d = tempfile.mkdtemp()
  os.makedirs(os.path.join(d, 'x', 'y'))
  for name, v in (('a', a), ('x/b', b)):
    with open(os.path.join(d, name), 'w') as f:
      f.write(str(v))
  assert sorted(os.listdir(d)) == ['a', 'x']
  total = sum(int(open(os.path.join(d, n)).read()) for n in ('a', 'x/b'))
  shutil.rmtree(d)
  return total
