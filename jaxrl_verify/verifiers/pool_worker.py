"""One verifier worker process of `VerifierPool`: the parent's handle and the worker's loop.

The parent starts each worker with `Worker.start` as `python -m
jaxrl_verify.verifiers.pool_worker FD PARENT_PID MEMORY_LIMIT_MB IMPORTS_JSON` (a fresh
interpreter, CPU-only, in its own session); the worker runs `main`: it sets
PR_SET_PDEATHSIG and RLIMIT_AS, imports `imports` and the built-in verifiers, sends
`("ready",)` (or `("failed", traceback)`), then answers each `(ticket, request)` with
`(ticket, verdict, retiring)` until its socket closes. Both sides live in this module
so that the command line and the messages are written and read in one place.

This module, run as the worker, imports only the standard library and
`jaxrl_verify.verifiers` (never JAX): keep it that way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from jaxrl_verify.verifiers.base import Verdict

STARTUP_TIMEOUT_S = 120.0  # A worker that has not imported its modules by then is killed.


# --- parent side ---


def kill_group(pid: int, sig: int) -> None:
  """Signals a worker's whole process group (the worker and anything it started)."""
  with contextlib.suppress(ProcessLookupError, PermissionError):
    os.killpg(pid, sig)


@dataclasses.dataclass
class Worker:
  """The parent's handle on one worker process.

  Attributes:
    proc: the process, leader of its own session and process group.
    conn: the parent's end of the worker's socket.
    ready: whether the worker finished importing and accepts items.
    task: (ticket, timeout_s) of the item it holds, or None when idle.
    started: `time.monotonic()` when it received the current item.
    deadline: `started + timeout_s`; before it is ready, its start-up deadline.
    num_tasks: items finished, for recycling.
  """

  proc: subprocess.Popen
  conn: Connection
  ready: bool = False
  task: tuple[int, float] | None = None
  started: float = 0.0
  deadline: float = float("inf")
  num_tasks: int = 0

  @classmethod
  def start(cls, memory_limit_mb: int | None, imports: Sequence[str]) -> Worker:
    parent_sock, child_sock = socket.socketpair()
    fd = child_sock.fileno()
    # The parent's sys.path, so that `imports` resolve in the worker as they do here.
    path = os.pathsep.join(p or os.getcwd() for p in sys.path)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=path)
    argv = [str(fd), str(os.getpid()), str(memory_limit_mb or 0), json.dumps(list(imports))]
    proc = subprocess.Popen(
      [sys.executable, "-m", "jaxrl_verify.verifiers.pool_worker", *argv],
      pass_fds=(fd,),
      start_new_session=True,
      env=env,
      stdin=subprocess.DEVNULL,
      stdout=subprocess.DEVNULL,
    )
    child_sock.close()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    return cls(proc=proc, conn=Connection(parent_sock.detach()), deadline=deadline)

  def send(self, ticket: int, request: tuple, timeout_s: float) -> None:
    self.conn.send((ticket, request))
    self.task = (ticket, timeout_s)
    self.started = time.monotonic()
    self.deadline = self.started + timeout_s

  def exit_cause(self) -> str:
    """Why the (dead) worker exited, e.g. 'killed by SIGSEGV' or 'exit code 3'."""
    try:
      code = self.proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
      self.stop()
      return "its socket closed; killed"
    if code < 0:
      return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"

  def stop(self) -> None:
    """SIGTERM, then SIGKILL after 0.5 s, to the worker's group; reaps it."""
    if self.proc.poll() is None:
      kill_group(self.proc.pid, signal.SIGTERM)
      with contextlib.suppress(subprocess.TimeoutExpired):
        self.proc.wait(timeout=0.5)
    kill_group(self.proc.pid, signal.SIGKILL)  # Also reaches children left in the group.
    self.proc.wait()
    self.conn.close()


# --- worker process ---


def check(name: str, completion: str, reference: Any, fields: dict) -> tuple[Verdict, bool]:
  """Runs one verifier; returns (verdict, whether this worker must exit afterwards)."""
  from jaxrl_verify.verifiers import base

  start = time.perf_counter()
  fatal = False
  try:
    verdict = base.get(name)(completion, reference, **fields)
    if not isinstance(verdict, Verdict):
      verdict = Verdict("error", 0.0, reason=f"verifier {name!r} returned {type(verdict).__name__}")
  except MemoryError:
    fatal = True  # The heap may be fragmented: recycle the worker.
    verdict = Verdict("error", 0.0, reason="MemoryError: the check hit the worker memory limit")
  except SystemExit as e:
    verdict = Verdict("error", 0.0, reason=f"the check called sys.exit({e.code!r})")
  except BaseException as e:  # noqa: BLE001 - every failure of a check is a verdict.
    verdict = Verdict("error", 0.0, reason=f"{type(e).__name__}: {e}"[:300])
  return dataclasses.replace(verdict, latency_s=time.perf_counter() - start), fatal


def main(fd: int, parent_pid: int, memory_limit_mb: int, imports: list[str]) -> None:
  """The worker's life: limits, imports, then one check at a time until told to stop."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # The parent decides when workers stop.
  try:
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent.
  except (OSError, AttributeError):
    pass
  if os.getppid() != parent_pid:
    os._exit(0)
  conn = Connection(fd)
  if memory_limit_mb > 0:
    import resource

    limit = memory_limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
  try:
    from jaxrl_verify.verifiers import base

    for module in imports:  # First, so that a bad module name fails fast.
      importlib.import_module(module)
    base.names()  # Imports the built-in verifiers (and so sympy) before the first item.
  except BaseException:  # noqa: BLE001
    conn.send(("failed", traceback.format_exc(limit=4)))
    os._exit(1)
  conn.send(("ready",))
  while True:
    try:
      message = conn.recv()
    except (EOFError, OSError):
      os._exit(0)
    if message is None:
      os._exit(0)
    ticket, (name, completion, reference, fields) = message
    verdict, fatal = check(name, completion, reference, fields)
    conn.send((ticket, verdict, fatal))
    if fatal:
      os._exit(0)


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]))
