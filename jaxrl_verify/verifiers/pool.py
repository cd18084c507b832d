"""`VerifierPool`: run verifiers in killable worker processes, submit-as-you-go.

Design (after maxtext's `math_verify_pool`): each worker is a fresh CPU-only Python
(`JAX_PLATFORMS=cpu`) that imports `jaxrl_verify.verifiers` (warming sympy) and the
modules named in `imports`, then runs one check at a time on its main thread. A parent
thread (the dispatcher) hands each worker one item, enforces that item's deadline by
killing the worker's process group (SIGTERM, then SIGKILL) and starting a replacement,
and turns every failure into a `Verdict`: a crash (segfault, `os._exit`), `sys.exit`,
an exception or a MemoryError under the RLIMIT_AS cap costs only the item it held.

Why not pebble: its `ProcessPool` has per-task timeouts, but it starts
workers through `multiprocessing`, whose spawn start method re-imports the parent's
`__main__` in every worker, so a trainer script with `import jax` at the top would import
JAX in each verifier worker. Pebble also does not expose respawn or crash counts, nor
kill a worker's process group (the code verifier's sandbox children). Workers here are
started with `subprocess` as `python -m jaxrl_verify.verifiers.pool_worker` (a spawn,
without the `__main__` re-import), in their own session, with PR_SET_PDEATHSIG so they
die with the parent even on SIGKILL; `close()` also runs at exit and on SIGTERM.

Modules: this one is the parent's dispatcher; `pool_worker` holds the worker handle and
the worker process's loop; `pool_stats` the metrics.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import json
import os
import signal
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from multiprocessing.connection import wait
from typing import Any

from jaxrl_verify.verifiers.base import Verdict
from jaxrl_verify.verifiers.pool_stats import PoolStats
from jaxrl_verify.verifiers.pool_worker import STARTUP_TIMEOUT_S, Worker, kill_group

__all__ = ["STARTUP_TIMEOUT_S", "PoolStats", "VerifierPool", "Worker", "kill_group"]

_LIVE_POOLS: weakref.WeakSet[VerifierPool] = weakref.WeakSet()
_FAILED_STARTS_BEFORE_GIVING_UP = 3
# One idle, already-imported worker beyond `num_workers`, so a killed worker's replacement
# is warm at once instead of after a ~1 s interpreter + sympy start-up.
_SPARE_WORKERS = 1


class VerifierPool:
  """A pool of verifier worker processes with deadlines, crash isolation and a cache.

  Usage: `with VerifierPool(2) as pool: t = pool.submit("math", text, "42");
  pool.result(t)`. `submit` never blocks; collect with `result` / `results` (in order)
  or `as_completed`. Every ticket gets exactly one `Verdict`: `timeout` when the item ran
  past its deadline (its worker is killed and replaced), `error` when the check raised
  (reason names the exception) or its worker died (reason names the signal or exit).

  Args:
    num_workers: items checked at once (one more idle, warm worker is kept as a spare).
    timeout_s: default per-item deadline, measured from when a worker starts the item.
    memory_limit_mb: RLIMIT_AS per worker (None: unlimited).
    max_tasks_per_worker: recycle a worker after this many items (None: never); counted
      as `verify/recycles`, apart from `verify/respawns` (replacements after a failure).
    cache_size: LRU results cache keyed by (verifier, completion, reference, fields);
      only `ok`/`wrong`/`invalid` verdicts are cached. 0 disables it.
    imports: extra modules each worker imports at start (to register user verifiers).
  """

  def __init__(
    self,
    num_workers: int = 2,
    timeout_s: float = 5.0,
    memory_limit_mb: int | None = 2048,
    max_tasks_per_worker: int | None = 1000,
    cache_size: int = 100_000,
    imports: Sequence[str] = (),
  ):
    if num_workers < 1:
      raise ValueError(f"num_workers must be at least 1, got {num_workers}.")
    if timeout_s <= 0:
      raise ValueError(f"timeout_s must be positive, got {timeout_s}.")
    self.num_workers = num_workers
    self.timeout_s = timeout_s
    self.memory_limit_mb = memory_limit_mb
    self.max_tasks_per_worker = max_tasks_per_worker
    self.cache_size = cache_size
    self.imports = tuple(imports)
    self._cond = threading.Condition()
    self._pending: collections.deque[tuple[int, tuple, float]] = collections.deque()
    self._done: dict[int, Verdict] = {}
    self._cache: collections.OrderedDict[tuple, Verdict] = collections.OrderedDict()
    self._keys: dict[int, tuple] = {}
    self._next_ticket = 0
    self._unclaimed: set[int] = set()  # issued tickets whose verdict was not yet collected
    self._workers: list[Worker] = []
    self._stats = PoolStats()
    self._closed = False
    self._broken: str | None = None
    self._failed_starts = 0
    self._wake_r, self._wake_w = socket.socketpair()
    self._thread = threading.Thread(target=self._dispatch_loop, name="VerifierPool", daemon=True)
    _LIVE_POOLS.add(self)
    _install_exit_hooks()
    self._thread.start()

  # --- public API ---

  def submit(
    self,
    verifier: str,
    completion: str,
    reference: Any,
    fields: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
  ) -> int:
    """Queues one check and returns its ticket at once; `timeout_s` overrides the pool's."""
    fields = dict(fields or {})
    key = (verifier, completion, _freeze(reference), _freeze(fields))
    with self._cond:
      if self._closed:
        raise RuntimeError("VerifierPool.submit called after close(); create a new pool.")
      ticket = self._next_ticket
      self._next_ticket += 1
      self._unclaimed.add(ticket)
      self._stats.submitted(time.perf_counter())
      cached = self._cache.get(key) if self.cache_size else None
      if cached is not None:
        self._cache.move_to_end(key)
        self._stats.cache_hits += 1
        self._finish(ticket, dataclasses.replace(cached, latency_s=0.0), cached=True)
        return ticket
      self._keys[ticket] = key
      request = (verifier, completion, reference, fields)
      self._pending.append((ticket, request, timeout_s or self.timeout_s))
    self._wake()
    return ticket

  def result(self, ticket: int) -> Verdict:
    """Blocks until `ticket`'s verdict is ready and returns it (once per ticket)."""
    with self._cond:
      self._check_unclaimed([ticket])
      self._cond.wait_for(lambda: ticket in self._done)
      self._unclaimed.discard(ticket)
      return self._done.pop(ticket)

  def _check_unclaimed(self, tickets: Iterable[int]) -> None:
    for ticket in tickets:
      if ticket not in self._unclaimed:
        raise KeyError(
          f"Ticket {ticket} was never issued by this pool or its verdict was already collected."
        )

  def results(self, tickets: Iterable[int]) -> list[Verdict]:
    """Verdicts for `tickets`, in the order given."""
    return [self.result(t) for t in tickets]

  def as_completed(self, tickets: Iterable[int]) -> Iterator[tuple[int, Verdict]]:
    """Yields (ticket, verdict) for `tickets` in completion order."""
    remaining = set(tickets)
    with self._cond:
      self._check_unclaimed(remaining)
    while remaining:
      with self._cond:
        self._cond.wait_for(lambda: any(t in self._done for t in remaining))
        ready = [t for t in remaining if t in self._done]
        self._unclaimed.difference_update(ready)
        out = [(t, self._done.pop(t)) for t in ready]
      remaining.difference_update(ready)
      yield from out

  def map(self, requests: Iterable[Mapping[str, Any]]) -> list[Verdict]:
    """Submits dicts of `submit` keyword arguments and returns their verdicts in order."""
    return self.results([self.submit(**r) for r in requests])

  def stats(self) -> dict[str, float]:
    """Flat metrics since the last `reset_stats`: throughput, latency, failure counts."""
    with self._cond:
      return self._stats.summary()

  def reset_stats(self) -> None:
    with self._cond:
      self._stats = PoolStats()

  def close(self) -> None:
    """Stops the workers (killing their process groups) and fails unfinished items."""
    with self._cond:
      if self._closed:
        return
      self._closed = True
    self._wake()
    if threading.current_thread() is not self._thread:
      self._thread.join()
    _LIVE_POOLS.discard(self)

  def __enter__(self) -> VerifierPool:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # --- dispatcher thread ---

  def _wake(self) -> None:
    with contextlib.suppress(OSError):
      self._wake_w.send(b"x")

  def _finish(self, ticket: int, verdict: Verdict, cached: bool = False) -> None:
    """Records a verdict; the caller holds `self._cond`."""
    key = self._keys.pop(ticket, None)
    if key is not None and self.cache_size and verdict.status in ("ok", "wrong", "invalid"):
      self._cache[key] = verdict
      if len(self._cache) > self.cache_size:
        self._cache.popitem(last=False)
    self._stats.record(verdict, time.perf_counter(), cached)
    self._done[ticket] = verdict
    self._cond.notify_all()

  def _dispatch_loop(self) -> None:
    reason = "pool closed before the check ran"
    try:
      while not self._closed:
        self._fill_workers()
        self._hand_out()
        self._wait_and_collect()
        self._enforce_deadlines()
    except BaseException as e:  # A bug here must fail the items, never hang `result()`.
      reason = f"verifier pool stopped: {type(e).__name__}: {e}"[:300]
      raise
    finally:
      with self._cond:
        self._closed = True
      for worker in self._workers:
        worker.stop()
      with self._cond:
        for ticket, _, _ in self._pending:
          self._finish(ticket, Verdict("error", 0.0, reason=reason))
        self._pending.clear()
        for worker in self._workers:
          if worker.task is not None:
            self._finish(worker.task[0], Verdict("error", 0.0, reason="pool closed mid-check"))
      self._workers.clear()
      self._wake_r.close()
      self._wake_w.close()

  def _fill_workers(self) -> None:
    while len(self._workers) < self.num_workers + _SPARE_WORKERS and self._broken is None:
      self._workers.append(Worker.start(self.memory_limit_mb, self.imports))

  def _hand_out(self) -> None:
    with self._cond:
      if self._broken is not None:
        while self._pending:
          ticket = self._pending.popleft()[0]
          self._finish(ticket, Verdict("error", 0.0, reason=self._broken))
        return
      busy = sum(w.task is not None for w in self._workers)
      for worker in self._workers:
        if busy < self.num_workers and worker.ready and worker.task is None and self._pending:
          busy += 1
          ticket, request, timeout_s = self._pending.popleft()
          try:
            worker.send(ticket, request, timeout_s)
          except Exception as e:  # e.g. an unpicklable field: the item, not the pool, fails.
            self._finish(ticket, Verdict("error", 0.0, reason=f"cannot send item: {e}"[:200]))

  def _wait_and_collect(self) -> None:
    deadlines = [w.deadline for w in self._workers if w.task is not None or not w.ready]
    timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
    conns: list[Any] = [self._wake_r] + [w.conn for w in self._workers]
    for ready in wait(conns, timeout):
      if ready is self._wake_r:
        self._wake_r.recv(4096)
        continue
      worker = next(w for w in self._workers if w.conn is ready)
      try:
        message = worker.conn.recv()
      except (EOFError, OSError):
        self._on_worker_death(worker)
        continue
      self._on_message(worker, message)

  def _on_message(self, worker: Worker, message: tuple) -> None:
    if message[0] == "ready":
      worker.ready = True
      self._failed_starts = 0
      return
    if message[0] == "failed":
      self._replace(worker, why=None)
      self._failed_starts += 1
      if self._failed_starts >= _FAILED_STARTS_BEFORE_GIVING_UP:
        self._broken = f"verifier workers fail to start: {message[1][-300:]}"
      return
    ticket, verdict, retiring = message
    worker.task = None
    worker.num_tasks += 1
    limit = self.max_tasks_per_worker
    if retiring:  # The check failed in a way that leaves the worker unfit (MemoryError).
      self._replace(worker)
    elif limit and worker.num_tasks >= limit:
      self._replace(worker, why="recycle")
    with self._cond:
      self._finish(ticket, verdict)

  def _on_worker_death(self, worker: Worker) -> None:
    cause = worker.exit_cause()
    task, elapsed = worker.task, time.monotonic() - worker.started
    self._replace(worker)
    if task is not None:
      self._stats.crashes += 1
      with self._cond:
        reason = f"worker crashed ({cause}) while checking this item"
        self._finish(task[0], Verdict("error", 0.0, elapsed, reason))
    elif not worker.ready:
      self._failed_starts += 1
      if self._failed_starts >= _FAILED_STARTS_BEFORE_GIVING_UP:
        self._broken = f"verifier workers die at start-up ({cause}); see their stderr"

  def _enforce_deadlines(self) -> None:
    now = time.monotonic()
    for worker in list(self._workers):
      if not worker.ready and now >= worker.deadline:  # hung while importing
        self._replace(worker, why=None)
        self._failed_starts += 1
        if self._failed_starts >= _FAILED_STARTS_BEFORE_GIVING_UP:
          self._broken = f"verifier workers not ready within {STARTUP_TIMEOUT_S:g} s"
      elif worker.task is not None and now >= worker.deadline:
        (ticket, timeout_s), elapsed = worker.task, now - worker.started
        worker.task = None
        self._replace(worker)  # Kill first: the verdict means the check is really gone.
        with self._cond:
          reason = f"no verdict within {timeout_s:g} s; worker killed"
          self._finish(ticket, Verdict("timeout", 0.0, elapsed, reason))

  def _replace(self, worker: Worker, why: str | None = "failure") -> None:
    """Stops `worker`; `_fill_workers` starts its replacement.

    Args:
      worker: the worker to stop and drop.
      why: "failure" (crash, timeout kill, MemoryError; counted in `respawns`),
        "recycle" (`max_tasks_per_worker` reached; counted in `recycles`), or None for a
        worker that never started (counted in `_failed_starts` by the caller).
    """
    worker.stop()
    self._workers.remove(worker)
    if self._closed:
      return
    if why == "failure":
      self._stats.respawns += 1
    elif why == "recycle":
      self._stats.recycles += 1


def _freeze(value: Any) -> Any:
  """A hashable cache key for JSON-like values."""
  if isinstance(value, (str, int, float, bool, type(None))):
    return value
  return json.dumps(value, sort_keys=True, default=repr)


# --- parent exit hooks ---

_HOOKS_INSTALLED = False


def _kill_all_workers() -> None:
  """Kills every live worker at once, without taking locks (safe in a signal handler)."""
  for pool in list(_LIVE_POOLS):
    for worker in list(pool._workers):
      kill_group(worker.proc.pid, signal.SIGKILL)


def _close_all() -> None:
  for pool in list(_LIVE_POOLS):
    pool.close()


def _on_sigterm(signum, frame) -> None:
  _kill_all_workers()
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  os.kill(os.getpid(), signal.SIGTERM)


def _install_exit_hooks() -> None:
  global _HOOKS_INSTALLED
  if _HOOKS_INSTALLED:
    return
  _HOOKS_INSTALLED = True
  atexit.register(_close_all)
  in_main = threading.current_thread() is threading.main_thread()
  if in_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)
