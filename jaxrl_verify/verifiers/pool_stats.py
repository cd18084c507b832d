"""`PoolStats`: the counters and latencies behind `VerifierPool.stats()`."""

from __future__ import annotations

import collections

from jaxrl_verify.verifiers.base import STATUSES, Verdict


class PoolStats:
  """Counters and latencies since the last reset (latencies exclude cache hits).

  Attributes:
    first_submit: `time.perf_counter()` of the first submit, or None.
    last_done: `time.perf_counter()` of the last verdict, or None.
    latencies: latency of every verdict not answered from the cache.
    status_counts: verdicts per status.
    completed: verdicts recorded (cache hits included).
    cache_hits: verdicts answered from the cache.
    crashes: items whose worker died while checking them.
    respawns: workers replaced after a failure (crash, timeout kill, MemoryError).
    recycles: workers replaced routinely after `max_tasks_per_worker` items.
  """

  def __init__(self):
    self.first_submit: float | None = None
    self.last_done: float | None = None
    self.latencies: list[float] = []
    self.status_counts: collections.Counter[str] = collections.Counter()
    self.completed = self.cache_hits = self.crashes = self.respawns = self.recycles = 0

  def submitted(self, now: float) -> None:
    if self.first_submit is None:
      self.first_submit = now

  def record(self, verdict: Verdict, now: float, cached: bool) -> None:
    self.completed += 1
    self.status_counts[verdict.status] += 1
    self.last_done = now
    if not cached:
      self.latencies.append(verdict.latency_s)

  def summary(self) -> dict[str, float]:
    span = (self.last_done or 0.0) - (self.first_submit or 0.0)
    lat = sorted(self.latencies)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0
    out = {
      "verify/completed": float(self.completed),
      "verify/throughput_per_s": self.completed / span if span > 0 else 0.0,
      "verify/latency_p50_s": pct(0.5),
      "verify/latency_p99_s": pct(0.99),
      "verify/latency_max_s": lat[-1] if lat else 0.0,
      "verify/timeouts": float(self.status_counts["timeout"]),
      "verify/errors": float(self.status_counts["error"]),
      "verify/crashes": float(self.crashes),
      "verify/respawns": float(self.respawns),
      "verify/recycles": float(self.recycles),
      "verify/cache_hits": float(self.cache_hits),
    }
    out.update({f"verify/status_{s}": float(self.status_counts[s]) for s in STATUSES})
    return out
