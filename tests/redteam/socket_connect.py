# ruff: noqa
# fmt: off
# expect: network
# format: asserts
import socket
def add(a, b):
  socket.create_connection(('127.0.0.1', 8000), timeout=1)
  return a + b
