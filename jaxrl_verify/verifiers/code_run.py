"""Runs each test format of the `code` verifier in sandboxes and interprets what happened.

`run_asserts`, `run_check` and `run_io` return, for the visible and the hidden tests, which
passed and the reason of the first failure; they raise `Hack` when a sandboxed process
misbehaved (the reason starts with one of `HACKS`) or a sandbox could not run (`status` is then
`error` or `timeout`). Everything a candidate's process reports is treated as untrusted input.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Any

from jaxrl_verify.verifiers import code_harness
from jaxrl_verify.verifiers import sandbox as sbx
from jaxrl_verify.verifiers.code_split import compare, forged_marker, normalise_output, split_assert

HACKS = (
  "exits-early",
  "kills-self",
  "kills-parent",
  "forged-verdict",
  "reads-tests",
  "monkeypatch",
  "forks",
  "output-flood",
  "disk-fill",
  "spins",
  "sleeps",
  "ignores-signals",
  "network",
  "native-code",
)
_IO_BATCH = 4
_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL)
# (visible tests passed, hidden tests passed, reason of the first failure)
Result = tuple[list[bool], list[bool], "str | None"]


class Hack(Exception):
  """A reward hack (or a sandbox failure, when `status` is not `wrong`)."""

  def __init__(self, reason: str, status: str = "wrong"):
    super().__init__(reason)
    self.reason, self.status = reason, status


def default_limits(timeout_s: float) -> sbx.Limits:
  # CPU limit below the wall deadline: a spinning program is told apart from a sleeping one.
  return sbx.Limits(wall_s=timeout_s, cpu_s=max(1.0, 0.5 * timeout_s))


def diagnose(out: sbx.Outcome, role: str, *, answers_missing=False, cpu_s=0.0) -> None:
  """Raises `Hack` when a sandboxed process misbehaved or did not run.

  `role`: `candidate` (output is not the answer), `io` (stdout is the answer) or `trusted`.
  """
  if not out.ready:
    if out.deadline:
      raise Hack("the sandbox did not start before the deadline", "timeout")
    tail = out.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    raise Hack(f"the sandbox failed to start: {tail[0][:200]}", "error")
  if out.forged:
    raise Hack("forged-verdict: lines forged on the harness's report channel")
  if role == "candidate":
    marker = forged_marker(
      out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
    )
    if marker:
      raise Hack(f"forged-verdict: printed {marker!r}")
  flag = out.first("flag")
  if flag:
    raise Hack(f"{str(flag['flag'])[:40]}: {str(flag.get('detail'))[:200]}")
  if out.output_capped:
    raise Hack("output-flood: output exceeded the cap")
  rc = out.returncode
  if rc == 128 + 25:
    raise Hack("disk-fill: exceeded the file-size limit")
  if rc == 128 + 24:
    raise Hack("spins: exceeded the CPU-time limit")
  if rc == 128 + 9 and not out.deadline and out.wall_s >= cpu_s:
    raise Hack("ignores-signals: killed at the hard CPU-time limit")
  if out.deadline:
    if out.ignored_term:
      raise Hack("ignores-signals: survived SIGTERM at the deadline")
    # Start-up costs ~0.05 CPU s; a sleeping program adds nearly nothing to it.
    kind = "spins" if out.deadline_running or out.deadline_cpu_s >= 0.25 else "sleeps"
    raise Hack(f"{kind}: still running at the {out.wall_s:.1f}s deadline")
  if rc is not None and rc - 128 in _CRASH_SIGNALS:  # e.g. deep recursion: a bug, not a hack
    raise Hack(f"runtime-error: crashed with signal {rc - 128}")
  if rc is not None and rc > 128:
    raise Hack(f"kills-self: died of signal {rc - 128}")
  if answers_missing and not out.done:
    raise Hack("exits-early: the process ended before the tests ran")
  if role == "trusted" and not out.done:
    raise Hack("the test harness did not finish", "error")


def decode_result(value: Any) -> Any:
  """A result from the candidate's report channel as plain data; forged junk is a hack."""
  try:
    return code_harness.de(value)
  except Exception as e:  # noqa: BLE001 - any shape a forger can send
    raise Hack(f"forged-verdict: a malformed result ({type(e).__name__})") from None


def _error_reason(err: Any) -> str:
  err = str(err)[:300]
  if "No space left" in err or "File too large" in err:
    raise Hack(f"disk-fill: {err}")
  if err.startswith("missing-function"):
    return err
  return f"runtime-error: {err}"


def run_asserts(program: str, tests: list[str], hidden: list[str], limits, backend) -> Result:
  try:
    splits = [split_assert(t) for t in [*tests, *hidden]]
  except ValueError as e:
    raise Hack(f"bad-test: {e}", "error") from None
  exprs = [s.expected_expr for s in splits if s.expected_expr is not None]
  specs = [sbx.Spec({"mode": "calls", "program": program, "calls": [s.call for s in splits]})]
  if exprs:
    specs.append(sbx.Spec({"mode": "calls", "program": "", "calls": exprs}))
  outs = sbx.run_group(specs, limits, backend=backend)
  # The candidate's process may write to its report channel: trust no field's type.
  answers = {r["call"]: r for r in outs[0].reports if type(r.get("call")) is int}
  diagnose(outs[0], "candidate", answers_missing=len(answers) < len(splits), cpu_s=limits.cpu_s)
  expected_iter = iter([])
  if exprs:
    diagnose(outs[1], "trusted")
    values = [r for r in outs[1].reports if "call" in r]
    if any("value" not in r for r in values):
      bad = next(r for r in values if "value" not in r)
      raise Hack(f"bad-test: an expected value failed to evaluate ({bad})", "error")
    expected_iter = iter([code_harness.de(r["value"]) for r in values])
  load_error = outs[0].first("load_error")
  passed: list[bool] = []
  first_failure = None
  for i, split in enumerate(splits):
    expected = next(expected_iter) if split.expected_expr is not None else split.expected
    answer = answers.get(i, {})
    if load_error:
      ok, why = False, _error_reason(f"{load_error['load_error']} (while loading)")
    elif "not_plain" in answer:
      ok, why = False, f"not-plain: test {i} returned a {answer['not_plain']} object"
    elif "error" in answer:
      ok, why = False, _error_reason(f"{answer['error']} (test {i})")
    else:
      ok = compare(split, decode_result(answer.get("value")), expected)
      why = f"wrong-answer: test {i} ({split.call})"
    passed.append(ok)
    if not ok and first_failure is None:
      first_failure = why
  return passed[: len(tests)], passed[len(tests) :], first_failure


def run_check(
  program: str, checks: list[str], n_visible: int, entry_point: str, limits, backend
) -> Result:
  kc_r, kc_w = os.pipe()
  ck_r, ck_w = os.pipe()
  k_job = {"mode": "check", "checks": checks, "entry_point": entry_point}
  c_job = {"mode": "serve", "program": program}
  specs = [
    sbx.Spec(dict(k_job, req_fd=kc_w, resp_fd=ck_r), pass_fds=(kc_w, ck_r)),
    sbx.Spec(dict(c_job, req_fd=kc_r, resp_fd=ck_w), pass_fds=(kc_r, ck_w)),
  ]
  k_out, c_out = sbx.run_group(
    specs, limits, backend=backend, close_after_start=(kc_r, kc_w, ck_r, ck_w)
  )
  results = [r for r in k_out.reports if "check" in r]
  gone = any(r.get("gone") for r in results)
  diagnose(c_out, "candidate", answers_missing=gone or not k_out.done, cpu_s=limits.cpu_s)
  if any(r["detail"].startswith("forged-verdict") for r in results):
    raise Hack(next(r["detail"] for r in results if r["detail"].startswith("forged-verdict")))
  diagnose(k_out, "trusted")
  first_failure = None
  for r in results:
    if not r["passed"] and first_failure is None:
      detail = r["detail"].removeprefix("the candidate raised ")
      if detail.startswith(("not-plain", "missing-function")):
        first_failure = detail
      elif r["detail"].startswith("the candidate raised"):
        first_failure = _error_reason(detail)
      else:
        first_failure = f"wrong-answer: check {r['check']}: {r['detail']}"
  passed = [bool(r["passed"]) for r in results]
  passed += [False] * (len(checks) - len(passed))
  return passed[:n_visible], passed[n_visible:], first_failure


def run_io(
  program: str, cases: list[dict[str, str]], n_visible: int, limits, deadline, backend
) -> Result:
  passed: list[bool] = []
  first_failure = None
  for start in range(0, len(cases), _IO_BATCH):
    batch = cases[start : start + _IO_BATCH]
    wall = deadline - time.monotonic()
    if wall <= 0.05:
      raise Hack(f"spins: {len(cases) - start} io tests left at the deadline")
    specs = [sbx.Spec({"mode": "io", "program": program}, str(c["input"]).encode()) for c in batch]
    outs = sbx.run_group(specs, dataclasses.replace(limits, wall_s=wall), backend=backend)
    for j, (case, out) in enumerate(zip(batch, outs)):
      diagnose(out, "io", cpu_s=limits.cpu_s)
      err = out.first("error") or out.first("exit_code")
      got = normalise_output(out.stdout.decode(errors="replace"))
      ok = err is None and got == normalise_output(str(case["output"]))
      if not ok and first_failure is None:
        i = start + j
        why = err.get("error") or f"exit code {err.get('exit_code')}" if err else ""
        first_failure = _error_reason(why) if err else f"wrong-answer: io test {i}"
      passed.append(ok)
  return passed[:n_visible], passed[n_visible:], first_failure


def test_format(items: list[Any]) -> str:
  """The format of a test list: `io` (dicts), `check` (check sources) or `asserts`."""
  if all(isinstance(t, dict) for t in items):
    return "io"
  if all(isinstance(t, str) for t in items):
    return "check" if any("def check" in t for t in items) else "asserts"
  raise Hack(
    "bad-test: hidden_tests mixes formats; give asserts, io dicts or check sources", "error"
  )
