"""Fault-injection tests for `VerifierPool`: every item gets a verdict, no process survives."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from jaxrl_verify.verifiers.pool import VerifierPool

FAULTS = "pool_fault_verifiers"  # tests/pool_fault_verifiers.py, imported by the workers.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _TESTS_DIR)

GOOD = [
  (r"\boxed{\frac{1}{2}}", "0.5", "ok"),
  (r"\boxed{\sqrt{8}}", r"2\sqrt{2}", "ok"),
  (r"\boxed{3}", "4", "wrong"),
  (r"\boxed{3} or \boxed{4}", "4", "invalid"),
]


def _children() -> set[int]:
  return {p.pid for p in psutil.Process().children(recursive=True)}


def _pool(**kwargs):
  kwargs.setdefault("imports", (FAULTS,))
  kwargs.setdefault("memory_limit_mb", 400)
  return VerifierPool(**kwargs)


def _hang_deadline(verifier: str) -> float | None:
  """A short per-item deadline for the verifiers that hang, the pool's default otherwise."""
  return 0.3 if verifier in ("test_sleep", "test_loop") else None


def test_workers_are_cpu_only_jax_free_and_capped():
  with _pool(num_workers=1, timeout_s=5.0) as pool:
    verdict = pool.result(pool.submit("test_probe", "", ""))
  assert verdict.status == "ok"
  assert verdict.extras["jax_imported"] == 0.0
  assert verdict.extras["sympy_imported"] == 1.0  # pre-imported by the math verifier
  assert verdict.extras["main_thread"] == 1.0
  assert verdict.extras["jax_platforms_cpu"] == 1.0
  assert verdict.extras["rlimit_as_mb"] == 400.0
  assert verdict.extras["pid"] != os.getpid()


def test_each_fault_costs_only_its_item():
  faults = [
    ("test_loop", "", "timeout", "worker killed"),
    ("test_sleep", "30", "timeout", "worker killed"),
    ("test_segfault", "", "error", "SIGSEGV"),
    ("test_alloc", "", "error", "MemoryError"),
    ("test_os_exit", "", "error", "exit code 7"),
    ("test_sys_exit", "", "error", "sys.exit(3)"),
    ("test_raise", "", "error", "ValueError: injected failure"),
    ("test_not_a_verdict", "", "error", "returned float"),
    ("no_such_verifier", "", "error", "Unknown verifier"),
  ]
  requests = []
  for name, completion, status, reason in faults:
    requests += [("math", c, r, s, None) for c, r, s in GOOD[:2]]
    requests.append((name, completion, "", status, reason))
  requests += [("math", c, r, s, None) for c, r, s in GOOD]
  before = _children()
  # A short deadline for the hangs only: an honest item on a loaded CI machine never
  # comes near the pool's 30 s, so only the faults can time out.
  with _pool(num_workers=2, timeout_s=30.0) as pool:
    tickets = [pool.submit(v, c, r, timeout_s=_hang_deadline(v)) for v, c, r, _, _ in requests]
    verdicts = pool.results(tickets)
    stats = pool.stats()
  for (verifier, _, _, status, reason), verdict in zip(requests, verdicts):
    assert verdict.status == status, (verifier, verdict)
    if reason:
      assert reason in verdict.reason, (verifier, verdict)
  assert stats["verify/timeouts"] == 2
  assert stats["verify/crashes"] == 2  # segfault, os._exit
  # Failures only: + two timeouts and the MemoryError; no routine recycle (limit 1000).
  assert stats["verify/respawns"] == 5
  assert stats["verify/recycles"] == 0
  assert _children() <= before  # no worker (or its children) outlives close()


def test_survives_1000_items_with_5_percent_faults():
  # 50 faults; the 10 that kill a worker cost a respawn (~1 s of CPU) each, so fewer.
  faults = ["test_raise"] * 25 + ["test_sys_exit"] * 10 + ["test_not_a_verdict"] * 5
  faults += ["test_os_exit"] * 3 + ["test_segfault"] * 3 + ["test_sleep"] * 2 + ["test_loop"] * 2
  rng = random.Random(0)
  slots = set(rng.sample(range(1000), len(faults)))
  fault_iter = iter(faults)
  requests = []
  for i in range(1000):
    if i in slots:
      requests.append((next(fault_iter), "30", "", None))
    else:  # Distinct good items, so the cache does not answer them.
      n = i + 2
      requests.append(
        ("math", rf"\boxed{{\frac{{{n}}}{{{2 * n}}}}}", "1/2" if i % 3 else "1/3", None)
      )
  before = _children()
  with _pool(num_workers=2, timeout_s=30.0, cache_size=0) as pool:
    verdicts = pool.map(
      [
        {"verifier": v, "completion": c, "reference": r, "timeout_s": _hang_deadline(v)}
        for v, c, r, _ in requests
      ]
    )
  assert len(verdicts) == 1000
  for i, ((verifier, _, _, _), verdict) in enumerate(zip(requests, verdicts)):
    if verifier == "math":
      assert verdict.status == ("ok" if i % 3 else "wrong"), verdict
    elif verifier in ("test_sleep", "test_loop"):
      assert verdict.status == "timeout"
    else:
      assert verdict.status == "error", (verifier, verdict)
  assert _children() <= before  # no worker (or its children) outlives close()


def test_submit_as_you_go_cache_timeout_override_and_stats():
  with _pool(num_workers=2, timeout_s=30.0) as pool:
    slow = pool.submit("test_sleep", "30", "", timeout_s=0.3)  # per-call deadline wins
    fast = [pool.submit("math", rf"\boxed{{{k}}}", str(k)) for k in range(6)]
    done = dict(pool.as_completed(fast + [slow]))
    assert set(done) == set(fast) | {slow}
    assert done[slow].status == "timeout" and "0.3 s" in done[slow].reason
    assert all(done[t].status == "ok" for t in fast)
    again = pool.result(pool.submit("math", r"\boxed{3}", "3"))
    stats = pool.stats()
    assert again.status == "ok" and stats["verify/cache_hits"] == 1
    assert stats["verify/status_ok"] == 7 and stats["verify/throughput_per_s"] > 0
    assert 0 < stats["verify/latency_p50_s"] <= stats["verify/latency_p99_s"]
    pool.reset_stats()
    assert pool.stats()["verify/completed"] == 0
    with pytest.raises(KeyError, match="never issued"):
      pool.result(10_000)
    with pytest.raises(KeyError, match="already collected"):
      pool.result(slow)
  with pytest.raises(RuntimeError, match="after close"):
    pool.submit("math", "", "")


def test_workers_are_recycled_after_max_tasks():
  with _pool(num_workers=1, max_tasks_per_worker=2, cache_size=0) as pool:
    verdicts = pool.map([{"verifier": "test_probe", "completion": "", "reference": ""}] * 6)
    stats = pool.stats()
  assert len({v.extras["pid"] for v in verdicts}) == 3
  # Each worker is replaced after its 2nd item (the 3rd before the 6th verdict is out).
  assert stats["verify/recycles"] == 3
  assert stats["verify/respawns"] == 0  # routine recycling is not a failure


_PARENT = textwrap.dedent(
  """
    import sys, time
    sys.path.insert(0, {tests!r})
    from jaxrl_verify.verifiers.pool import VerifierPool
    pool = VerifierPool(2, timeout_s=60, imports=("pool_fault_verifiers",))
    tickets = [pool.submit("test_sleep", "60", "") for _ in range(2)]
    print("submitted", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_orphans_when_the_parent_is_interrupted_or_killed(sig):
  script = _PARENT.format(tests=_TESTS_DIR)
  parent = subprocess.Popen(
    [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.path.dirname(_TESTS_DIR)
  )
  assert parent.stdout.readline().strip() == b"submitted"
  deadline = time.monotonic() + 30
  workers = []
  while len(workers) < 3 and time.monotonic() < deadline:  # 2 workers + 1 warm spare
    workers = psutil.Process(parent.pid).children()
    time.sleep(0.05)
  assert len(workers) == 3
  parent.send_signal(sig)
  # Generous: in the full suite on 2 loaded cores the killed parent has taken over 30 s to
  # be reaped (twice, SIGKILL); what this test checks is that no worker outlives it.
  parent.wait(timeout=120)
  _, alive = psutil.wait_procs(workers, timeout=10)
  assert not alive


def test_workers_that_cannot_start_fail_items_with_the_cause():
  with VerifierPool(num_workers=1, imports=("no_such_module_for_the_pool",)) as pool:
    verdict = pool.result(pool.submit("math", r"\boxed{1}", "1"))
  assert verdict.status == "error"
  assert "fail to start" in verdict.reason and "no_such_module_for_the_pool" in verdict.reason
