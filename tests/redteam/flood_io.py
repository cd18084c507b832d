# ruff: noqa
# fmt: off
# expect: output-flood
# format: io
while True:
  print('z' * 4096)
