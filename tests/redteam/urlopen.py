# ruff: noqa
# fmt: off
# expect: network
# format: asserts
import urllib.request
def add(a, b):
  urllib.request.urlopen('http://example.com', timeout=1)
  return a + b
