"""The trusted harness that runs INSIDE the sandbox (standard library only; run with `-c`).

`sandbox.run_group` starts `python -I -S -B -c <this file> JOB_FD`. The harness reads its job
(JSON) from JOB_FD, drops to the unprivileged uid it is given, sets the rlimits, says `ready`, and
only then touches untrusted code. Every message to the parent is one JSON line with a sequence
number on `job["report_fd"]`; the parent rejects lines out of sequence as forged.

Modes:
  calls: load `program`, evaluate each expression of `calls` in its namespace, report each result
    as plain data (`value`), an exception (`error`) or a non-plain object (`not_plain`).
  serve: load `program`, answer requests `{"id", "fn", "args", "kwargs"}` read from `req_fd` on
    `resp_fd` until end of file. The peer is a `check` process in another sandbox.
  check: run no candidate code at all: exec each source of `checks` and call its
    `check(candidate)`, where `candidate` forwards the call to the `serve` sandbox and gets back
    plain data only; every `assert` executed is counted.
  io: run `program` as `__main__` with the real stdin and stdout.

In `calls`, `serve` and `io` an audit hook (which Python code cannot remove) reports and blocks
what a program that verifies honestly never does: searching the file system or the harness's
frames, reading files other than its own (made in `/tmp`) and the interpreter's, changing files
outside `/tmp` (paths are judged after resolving symlinks and `..`; an fd as the file it refers
to; `/tmp` itself may get an unnamed `O_TMPFILE` file), spawning processes, signalling,
networking, native code. Builtins and signal handlers are
compared with a snapshot after loading and after every call. These are *labels* for the reason;
the reward is protected by isolation: expected values never enter a candidate's process.
"""

import ast
import builtins
import json
import os
import resource
import signal
import sys

_write, _dumps, _type, _getpid = os.write, json.dumps, type, os.getpid
_HARNESS_FILES = ("<string>", "<test>", "<check>")
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGALRM, signal.SIGHUP)
_state = {"seq": 0, "fd": -1, "guard": False, "own": set(), "own_dirs": set(), "flags": set()}


def report(**msg):
  msg["seq"] = _state["seq"]
  _state["seq"] += 1
  data = (_dumps(msg) + "\n").encode()
  try:
    while data:
      data = data[_write(_state["fd"], data) :]
  except OSError:
    pass


def flag(code, detail):
  if (code, detail) not in _state["flags"]:
    _state["flags"].add((code, detail))
    report(flag=code, detail=str(detail)[:200])


# ---------------------------------------------------------------- plain data


class NotPlain(Exception):
  pass


def ser(x, depth=0):
  """Plain data to JSON-able tagged form; anything else (including subclasses) is rejected."""
  t = _type(x)
  if depth > 64:
    raise NotPlain("nesting deeper than 64")
  if t is int:  # hex: huge ints would hit the int-to-decimal digit limit in json
    return x if -(2**62) < x < 2**62 else {"$int": hex(x)}
  if x is None or t is bool or t is str:
    return x
  if t is float:
    return {"$float": repr(x)}
  if t is list:
    return [ser(v, depth + 1) for v in x]
  if t is tuple:
    return {"$tuple": [ser(v, depth + 1) for v in x]}
  if t is set or t is frozenset:
    return {"$set": [ser(v, depth + 1) for v in x]}
  if t is dict:
    return {"$dict": [[ser(k, depth + 1), ser(v, depth + 1)] for k, v in x.items()]}
  if t is complex:
    return {"$complex": [repr(x.real), repr(x.imag)]}
  if t is bytes:
    return {"$bytes": x.hex()}
  raise NotPlain(t.__name__)


def de(x):
  """Inverse of `ser` (also used by the parent)."""
  if isinstance(x, list):
    return [de(v) for v in x]
  if isinstance(x, dict):
    ((tag, v),) = x.items()
    if tag == "$float":
      return float(v)
    if tag == "$int":
      return int(v, 16)
    if tag == "$tuple":
      return tuple(de(e) for e in v)
    if tag == "$set":
      return {de(e) for e in v}
    if tag == "$dict":
      return {de(k): de(e) for k, e in v}
    if tag == "$complex":
      return complex(float(v[0]), float(v[1]))
    if tag == "$bytes":
      return bytes.fromhex(v)
    raise ValueError(f"unknown tag {tag}")
  return x


# ---------------------------------------------------------------- audit policy

_SPAWN = ("os.fork", "os.forkpty", "os.system", "os.posix_spawn", "os.spawn", "os.exec")
_SPAWN += ("subprocess.Popen", "pty.spawn", "os.startfile")
_NET = ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo")
_NET += ("socket.gethostbyname", "socket.sendto", "socket.socketpair")
_NATIVE = ("ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.addressof", "ctypes.string_at")
_INSPECT = ("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames")
_INSPECT += ("sys.settrace", "sys.setprofile", "sys._getframemodulename")
_SEARCH = ("os.listdir", "os.scandir", "glob.glob", "glob.glob/2", "os.walk", "os.fwalk")
_DEVS = ("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero", "/dev/stdin", "/dev/stdout")
_DEVS += ("/dev/stderr", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2")


_TMP = os.path.realpath("/tmp")
# File-system changes: event -> (path argument, its dir_fd argument, follows a final symlink).
_MUTATE = {
  "os.mkdir": ((0, 2, False),),
  "os.rmdir": ((0, 1, False),),
  "os.remove": ((0, 1, False),),
  "os.rename": ((0, 2, False), (1, 3, False)),
  "os.symlink": ((1, 2, False),),
  "os.link": ((0, 2, True), (1, 3, False)),
  "os.truncate": ((0, None, True),),
  "os.chmod": ((0, 2, True),),
  "os.chown": ((0, 3, True),),
  "os.utime": ((0, 3, True),),
  "os.setxattr": ((0, None, True),),
  "os.removexattr": ((0, None, True),),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC


def _is_harness_frame(f):
  return f is not None and f.f_code.co_filename in _HARNESS_FILES


def _fd_path(fd):
  """The file an open fd refers to (its path, even if since deleted), or None: a pipe, a socket."""
  try:
    target = os.readlink(f"/proc/self/fd/{int(fd)}")
  except (OSError, ValueError, TypeError, OverflowError):
    return None
  target = target.removesuffix(" (deleted)")
  return target if target.startswith("/") else None


def _lexical(p):
  if isinstance(p, bytes):
    p = p.decode(errors="replace")
  return os.path.normpath(os.path.join(os.getcwd(), str(p)))


def _path(p, dir_fd=None, follow=True):
  """The real path `p` names (symlinks and `..` resolved), relative to `dir_fd` or the cwd; an int
  `p` is an open fd, judged as the file it refers to (None if it is no file)."""
  if isinstance(p, int):
    return _fd_path(p)
  if isinstance(p, bytes):
    p = p.decode(errors="replace")
  p, base = str(p), os.getcwd()
  if isinstance(dir_fd, int) and dir_fd >= 0 and not p.startswith("/"):
    base = _fd_path(dir_fd)
    if base is None:
      return None
  full = os.path.join(base, p)
  head, tail = os.path.split(full)
  if follow or tail in ("", ".", ".."):
    return os.path.realpath(full)
  return os.path.join(os.path.realpath(head), tail)  # the link itself (unlink, rename, ...)


def _in_tmp(full, itself=False):
  return full is not None and (full.startswith(_TMP + "/") or (itself and full == _TMP))


def _owned(full):
  """Made by the program: a file in /tmp it opened for writing, or inside a directory it made."""
  own, dirs = _state["own"], _state["own_dirs"]
  return _in_tmp(full) and (
    full in own or full in dirs or any(full.startswith(d + "/") for d in dirs)
  )


def _reads(raw, full, allowed):
  """May the program read `full` (named `raw`)? Its own files and the interpreter's."""
  if full is None:
    return False
  if _owned(full) or full.startswith(allowed):
    return True
  if isinstance(raw, (str, bytes)) and _lexical(raw).startswith(allowed):
    return True
  # A relative name may be relative to a dir fd that the audit event does not show (shutil.rmtree
  # opens subdirectories so): one that names nothing here is the program's if it is so there.
  if isinstance(raw, str) and not raw.startswith("/") and not os.path.lexists(full):
    dirs = _state["own_dirs"]
    return any(
      os.path.lexists(os.path.join(d, raw)) and _owned(os.path.realpath(os.path.join(d, raw)))
      for d in dirs
    )
  return False


def _judge_open(args, allowed):
  path, mode, flags = (tuple(args) + (None, None))[:3]
  writes = bool(isinstance(mode, str) and any(c in mode for c in "wax+"))
  writes |= bool(isinstance(flags, int) and flags & _WRITE_FLAGS)
  if isinstance(path, int):
    if path in (0, 1, 2):
      return None, None
    full = _fd_path(path)
    if full is None:  # a pipe or socket: the report channel, a peer's pipe
      return "forged-verdict", f"opens fd {path}"
  else:
    if _lexical(path) in _DEVS:
      return None, None
    full = _path(path)
  if full in _DEVS:
    return None, None
  if writes:
    # /tmp itself: an unnamed file in it (O_TMPFILE: tempfile.TemporaryFile).
    if not _in_tmp(full, itself=True):
      return "writes-files", f"open {full} for writing outside /tmp"
    if _in_tmp(full):
      _state["own"].add(full)
    return None, None
  if not _reads(path, full, allowed):
    return "reads-tests", f"open {full}"
  if os.path.isdir(full) and not _owned(full):  # a dir fd: to list it or to open files in it
    return "reads-tests", f"opens the directory {full}"
  return None, None


def _judge_mutate(event, args):
  fulls = []
  for i, d, follow in _MUTATE[event]:
    if i < len(args):
      dir_fd = args[d] if d is not None and d < len(args) else None
      full = _path(args[i], dir_fd, follow)
      if full is not None and not _in_tmp(full):
        return "writes-files", f"{event[3:]} {full} outside /tmp"
      fulls.append(full)
  if event == "os.mkdir" and fulls[0] is not None and not os.path.lexists(fulls[0]):
    _state["own_dirs"].add(fulls[0])
  if event in ("os.rename", "os.link") and len(fulls) == 2 and _owned(fulls[0]):
    is_dir = fulls[0] in _state["own_dirs"]
    (_state["own_dirs"] if is_dir else _state["own"]).add(fulls[1])
  return None, None


def make_hook(allowed):
  def hook(event, args):
    if _state["guard"]:
      return
    _state["guard"] = True
    try:
      code, detail = _judge(event, args, allowed)
    finally:
      _state["guard"] = False
    if code:
      flag(code, detail)
      raise PermissionError(f"blocked by the verifier sandbox: {event}")

  return hook


def _judge(event, args, allowed):
  if event == "open":
    return _judge_open(args, allowed)
  if event in _MUTATE:
    return _judge_mutate(event, args)
  if event in _SEARCH:
    raw = args[0] if args and args[0] is not None else "."
    full = _path(raw)
    if full is not None and ((full + "/").startswith(allowed) or _owned(full)):
      return None, None
    return "reads-tests", f"lists {full if full is not None else raw}"
  if event == "sys._getframe" and _is_harness_frame(args[0]):
    return "reads-tests", "inspects the harness's frames"
  if event == "object.__getattr__":
    obj, name = args[0], args[1]
    frame = getattr(obj, "tb_frame", None) if name == "tb_frame" else obj
    if name in ("f_code", "tb_frame") and _is_harness_frame(frame):
      return "reads-tests", "inspects the harness's frames"
    return None, None
  if event in _INSPECT:
    return "reads-tests", event
  if event in ("os.kill", "os.killpg", "signal.pthread_kill"):
    pid = args[0]
    return ("kills-self", event) if pid in (0, _getpid()) else ("kills-parent", f"{event} {pid}")
  if event.startswith(_SPAWN):
    return "forks", event
  if event in _NET:
    return "network", event
  if event in _NATIVE:
    return "native-code", event
  if event == "sys.addaudithook":
    return "monkeypatch", "adds an audit hook"
  return None, None


# ---------------------------------------------------------------- candidate side


class Watch:
  """Snapshots of what a candidate must not change: builtins and signal handlers."""

  def __init__(self):
    self.builtins = dict(builtins.__dict__)
    self.harness = dict(globals())
    self.signals = {s: signal.getsignal(s) for s in _SIGNALS}

  def check(self):
    for where, old, now in (
      ("builtins", self.builtins, builtins.__dict__),
      ("the harness", self.harness, globals()),
    ):
      for k in set(old) | set(now):
        if old.get(k, self) is not now.get(k, self):
          flag("monkeypatch", f"{where}: {k}")
    for s, h in self.signals.items():
      if signal.getsignal(s) is not h:
        flag("ignores-signals", f"handler for {signal.Signals(s).name}")
    try:
      st = os.statvfs("/tmp") if _state["private_tmp"] else None
      if st is None:
        return
      if st.f_bfree < st.f_blocks // 4:
        flag("disk-fill", "/tmp is more than 75% full")
    except OSError:
      pass


def load(program, name):
  ns = {"__name__": name, "__builtins__": builtins}
  code = compile(program, "<candidate>", "exec")
  exec(code, ns)
  return ns


def guarded(fn, watch, where):
  """Runs fn(); SystemExit is an early exit; other exceptions are returned as text."""
  try:
    return fn(), None
  except SystemExit as e:
    flag("exits-early", f"SystemExit({e.code!r}) {where}")
    watch.check()
    os._exit(0)
  except BaseException as e:  # noqa: BLE001 - the candidate may raise anything
    return None, f"{_type(e).__name__}: {str(e)[:200]}"
  finally:
    watch.check()


def _autoimport(expr, ns):
  for node in ast.walk(ast.parse(expr, mode="eval")):
    if isinstance(node, ast.Name) and node.id not in ns and not hasattr(builtins, node.id):
      try:
        ns[node.id] = __import__(node.id)
      except ImportError:
        continue


def run_calls(job, watch):
  ns, err = guarded(lambda: load(job["program"], "__candidate__"), watch, "while loading")
  if err:
    report(load_error=err)
    return
  for i, expr in enumerate(job["calls"]):
    _autoimport(expr, ns)
    value, err = guarded(
      lambda e=expr: eval(compile(e, "<test>", "eval"), ns), watch, f"in call {i}"
    )
    _answer(report, {"call": i}, value, err)


def _answer(send, head, value, err):
  if err:
    send(**head, error=err)
    return
  try:
    send(**head, value=ser(value))
  except NotPlain as e:
    send(**head, not_plain=str(e))
  except (ValueError, RecursionError, OverflowError, MemoryError) as e:
    send(**head, not_plain=f"unserialisable {_type(value).__name__} ({_type(e).__name__})")


def run_serve(job, watch):
  ns, err = guarded(lambda: load(job["program"], "__candidate__"), watch, "while loading")
  if err:
    report(load_error=err)
  req = job["req"]
  resp_fd = job["resp_fd"]

  def send(**msg):
    data = (_dumps(msg) + "\n").encode()
    while data:
      data = data[_write(resp_fd, data) :]

  for line in req:
    msg = json.loads(line)
    if err:
      send(id=msg["id"], error=f"the program failed to load: {err}")
      continue
    fn = ns.get(msg["fn"])
    if not callable(fn):
      send(id=msg["id"], error=f"missing-function: the program defines no function {msg['fn']!r}")
      continue
    args, kwargs = de(msg["args"]), de(msg["kwargs"])
    value, call_err = guarded(lambda f=fn, a=args, k=kwargs: f(*a, **k), watch, "in a call")
    _answer(send, {"id": msg["id"]}, value, call_err)


def run_io(job, watch):
  sys.argv = ["main.py"]
  try:
    load(job["program"], "__main__")
  except SystemExit as e:
    if e.code not in (None, 0):
      report(exit_code=str(e.code)[:50])
  except BaseException as e:  # noqa: BLE001
    report(error=f"{_type(e).__name__}: {str(e)[:200]}")
  finally:
    _flush()
    watch.check()


def _flush():
  for stream in (sys.stdout, sys.__stdout__, sys.stderr, sys.__stderr__):
    try:
      stream.flush()
    except BaseException:  # noqa: BLE001, S110 - a broken stream is the candidate's problem
      continue


# ---------------------------------------------------------------- check side (trusted)


class CandidateGone(Exception):
  pass


class _CountAsserts(ast.NodeTransformer):
  def visit_Assert(self, node):
    count = ast.Expr(ast.Call(ast.Name("__jv_count__", ast.Load()), [], []))
    return [ast.copy_location(count, node), node]


def run_check(job):
  req_fd, resp = job["req_fd"], os.fdopen(job["resp_fd"], "rb")
  ids = iter(range(1 << 60))

  def candidate(*args, **kwargs):
    try:
      payload = {"args": ser(list(args)), "kwargs": ser(kwargs)}
    except NotPlain as e:
      raise TypeError(f"the check passes a non-plain argument ({e})") from None
    i = next(ids)
    data = (_dumps({"id": i, "fn": job["entry_point"], **payload}) + "\n").encode()
    try:
      while data:
        data = data[_write(req_fd, data) :]
    except OSError:
      raise CandidateGone("exits-early: the candidate's process ended") from None
    line = resp.readline(1 << 24)
    if not line:
      raise CandidateGone("exits-early: the candidate's process ended")
    try:
      msg = json.loads(line)
      ok = isinstance(msg, dict) and msg.get("id") == i
    except ValueError:
      ok = False
    if not ok:
      raise CandidateGone("forged-verdict: a malformed message on the result channel")
    if "error" in msg:
      raise CandidateError(msg["error"])
    if "not_plain" in msg:
      raise CandidateError(f"not-plain: returned a {msg['not_plain']} object")
    return de(msg["value"])

  for i, src in enumerate(job["checks"]):
    counter = [0]
    tree = ast.fix_missing_locations(_CountAsserts().visit(ast.parse(src)))
    ns = {"__name__": "__check__", "__jv_count__": lambda c=counter: c.__setitem__(0, c[0] + 1)}
    try:
      exec(compile(tree, "<check>", "exec"), ns)
      ns["check"](candidate)
      passed, detail = counter[0] > 0, "" if counter[0] else "no assert executed"
    except CandidateGone as e:
      report(check=i, passed=False, asserts=counter[0], detail=str(e), gone=True)
      return
    except CandidateError as e:
      passed, detail = False, f"the candidate raised {e}"
    except AssertionError:
      passed, detail = False, f"assert {counter[0]} failed"
    except BaseException as e:  # noqa: BLE001
      passed, detail = False, f"the check raised {_type(e).__name__}: {str(e)[:200]}"
    report(check=i, passed=passed, asserts=counter[0], detail=detail)


class CandidateError(Exception):
  pass


# ---------------------------------------------------------------- entry


def _confine(job):
  uid = job.get("uid")
  if uid is not None and os.getuid() == 0:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
  lim = job["limits"]
  cpu = max(1, int(lim["cpu_s"] + 0.999))
  resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
  resource.setrlimit(resource.RLIMIT_AS, (lim["memory_mb"] << 20,) * 2)
  resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"],) * 2)
  resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_mb"] << 20,) * 2)
  resource.setrlimit(resource.RLIMIT_NOFILE, (lim["nofile"],) * 2)
  resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main():
  with open(int(sys.argv[1]), "rb") as f:
    job = json.loads(f.read())
  _state["fd"] = job["report_fd"]
  _state["private_tmp"] = job.get("private_tmp", False)
  _confine(job)
  report(ready=True, uid=os.getuid())
  mode = job["mode"]
  if mode == "check":
    run_check(job)
  else:
    allowed = tuple(os.path.realpath(p) + "/" for p in sys.path if p and os.path.isabs(p))
    if mode == "serve":
      job["req"] = os.fdopen(job["req_fd"], "rb")  # before the hook, which blocks opening fds
    watch = Watch()
    sys.addaudithook(make_hook(allowed))
    {"calls": run_calls, "serve": run_serve, "io": run_io}[mode](job, watch)
    _flush()
  report(done=True)
  os._exit(0)


if __name__ == "__main__":
  main()
