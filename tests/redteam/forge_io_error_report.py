# ruff: noqa
# fmt: off
# expect: forged-verdict
# format: io
# An io program forging a malformed harness message, then printing the right answer.
import os
for fd in range(3, 64):
  try:
    os.write(fd, b'{"seq": 1, "error": {"startswith": 1}}\n')
  except OSError:
    pass
print(sum(map(int, input().split())))
