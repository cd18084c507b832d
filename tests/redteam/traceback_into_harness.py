# ruff: noqa
# fmt: off
# expect: reads-tests
# format: asserts
def add(a, b):
  try:
    raise ValueError
  except ValueError as e:
    frame = e.__traceback__.tb_frame.f_back
    frame.f_code.co_consts
  return 0
