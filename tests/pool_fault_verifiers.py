"""Test-only verifiers for the pool's fault-injection tests (imported by the workers).

Each one misbehaves in one way a real verifier might: loops forever, segfaults, allocates
without bound, calls `os._exit` or `sys.exit`, raises, or sleeps past its deadline.
`echo` is the well-behaved control: ok iff completion == reference.
"""

import ctypes
import os
import sys
import threading
import time

from jaxrl_verify.verifiers.base import Verdict, register


@register("test_echo")
def echo(completion, reference, **fields):
  status = "ok" if completion == reference else "wrong"
  return Verdict(status, float(status == "ok"), reason=str(fields.get("tag", "")))


@register("test_probe")
def probe(completion, reference, **fields):
  """Reports facts about the worker process as extras."""
  import resource

  soft, _ = resource.getrlimit(resource.RLIMIT_AS)
  extras = {
    "pid": float(os.getpid()),
    "jax_imported": float("jax" in sys.modules),
    "sympy_imported": float("sympy" in sys.modules),
    "main_thread": float(threading.current_thread() is threading.main_thread()),
    "rlimit_as_mb": float(soft // 2**20) if soft > 0 else -1.0,
    "jax_platforms_cpu": float(os.environ.get("JAX_PLATFORMS") == "cpu"),
  }
  return Verdict("ok", 1.0, extras=extras)


@register("test_loop")
def loop(completion, reference, **fields):
  while True:
    pass


@register("test_sleep")
def sleep(completion, reference, **fields):
  time.sleep(float(completion))
  return Verdict("ok", 1.0)


@register("test_segfault")
def segfault(completion, reference, **fields):
  ctypes.string_at(0)


@register("test_alloc")
def alloc(completion, reference, **fields):
  hoard, size = [], 8 * 2**20
  while True:  # bytes(n) is calloc'd: address space grows without touching pages (fast).
    hoard.append(bytes(size))
    size *= 2


@register("test_os_exit")
def os_exit(completion, reference, **fields):
  os._exit(7)


@register("test_sys_exit")
def sys_exit(completion, reference, **fields):
  sys.exit(3)


@register("test_raise")
def raise_(completion, reference, **fields):
  raise ValueError("injected failure")


@register("test_not_a_verdict")
def not_a_verdict(completion, reference, **fields):
  return 1.0
