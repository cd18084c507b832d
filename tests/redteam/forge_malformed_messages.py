# ruff: noqa
# fmt: off
# expect: forged-verdict
# format: asserts
# Well-sequenced but malformed lines, then an exit: the parent must not crash on them.
import os
deep = "[" * 100000 + "]" * 100000
lines = [
    '{"seq": 1, "call": [0], "flag": 5}',
    '{"seq": 2, "call": 0, "value": %s}' % deep,
    '{"seq": 3, "call": 1, "value": {"$weird": 1}}',
    '{"seq": 4, "call": 2, "value": {"$tuple": 5}}',
]
for fd in range(3, 64):
  try:
    os.write(fd, ("\n".join(lines) + "\n").encode())
  except OSError:
    pass
os._exit(0)
