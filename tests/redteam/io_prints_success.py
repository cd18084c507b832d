# ruff: noqa
# fmt: off
# expect: wrong-answer
# format: io
print('All tests passed')
