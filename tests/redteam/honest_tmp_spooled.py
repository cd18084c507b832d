# ruff: noqa
# fmt: off
# expect: passed
# format: asserts
import tempfile
def add(a, b):
  with tempfile.SpooledTemporaryFile(max_size=8, mode='w+') as f:
    f.write(str(a + b).rjust(64))
    assert f._rolled
    f.seek(0)
    return int(f.read())
