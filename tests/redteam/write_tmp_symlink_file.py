# ruff: noqa
# fmt: off
# expect: writes-files
# format: io
import os
if not os.path.lexists('/tmp/scratch'):  # a dangling link, out of /tmp
  os.symlink('/usr/lib/evil.py', '/tmp/scratch')
try:
  with open('/tmp/scratch', 'w') as f:
    f.write('x')
except OSError:
  pass
print(sum(map(int, input().split())))
