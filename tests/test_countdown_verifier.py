"""The countdown verifier: rules, exact arithmetic, and resistance to code injection."""

import subprocess
import sys

import pytest

from jaxrl_verify.verifiers import base
from jaxrl_verify.verifiers.countdown import verify

NUMBERS = [3, 5, 7, 2]


def check(completion, target=24, numbers=NUMBERS):
  return verify(completion, target, numbers=numbers)


@pytest.mark.parametrize(
  "completion",
  [
    "First 5 - 2 = 3, times 7 is 21, plus 3. \\boxed{(5 - 2) * 7 + 3}",
    "\\boxed{(7 + 5) \\times 2}",  # LaTeX operator, 3 unused (at most once)
    "\\boxed{(7 + 5) \\cdot 2 = 24}",  # a correctly stated result is accepted
    "\\boxed{\\left(7 + 5\\right) × 2}",
    "\\boxed{2 * (7 + 5)} and again \\boxed{2 * (7 + 5)}",  # same answer twice: not a hedge
    "\\boxed{{(7 + 5)} * 2}",  # braces as grouping
  ],
)
def test_accepts_correct_expressions(completion):
  verdict = check(completion)
  assert (verdict.status, verdict.reward) == ("ok", 1.0), verdict.reason


def test_exact_rational_arithmetic():
  # 8/3 is not representable in floating point; 8/3*3 must still be exactly 8.
  assert check("\\boxed{8 / 3 * 3}", target=8, numbers=[8, 3, 3]).status == "ok"
  assert check("\\boxed{7 / 2}", target=3, numbers=[7, 2]).status == "wrong"
  # The classic 24 from 1, 3, 4, 6 needs a fractional intermediate (3/4).
  assert check("\\boxed{6 / (1 - 3 / 4)}", target=24, numbers=[1, 3, 4, 6]).status == "ok"


@pytest.mark.parametrize(
  "completion, word",
  [
    ("\\boxed{3 * 5 + 7}", "not the target"),  # 22
    ("\\boxed{(7 + 5) * 2 = 25}", "not the stated"),
    ("\\boxed{3 * 7 + 3}", "more often"),  # 3 used twice, given once
    ("\\boxed{4 * 6}", "not among"),  # foreign numbers
    ("\\boxed{(7 + 5) * 2 + 0}", "not among"),
    ("\\boxed{7 / (5 - 5)}", "more often"),  # usage rules are checked before the value
    ("\\boxed{3 / (7 - 7 * 1)}", "not among"),
  ],
)
def test_rejects_wrong_answers_with_the_failed_rule(completion, word):
  verdict = check(completion)
  assert verdict.status == "wrong" and verdict.reward == 0.0
  assert word in verdict.reason


def test_division_by_zero_is_wrong():
  verdict = check("\\boxed{7 / (5 - 5)}", numbers=[7, 5, 5])
  assert verdict.status == "wrong" and "zero" in verdict.reason


@pytest.mark.parametrize(
  "completion",
  [
    "The answer is 24.",  # no box
    "\\boxed{}",
    "\\boxed{(7 + 5) * 2} or maybe \\boxed{3 * 7 + 5 - 2}",  # hedged
    "\\boxed{(7 + 5) * 2",  # unclosed
    "\\boxed{-3 + 27}",  # unary minus
    "\\boxed{2.5 * 3}",  # decimals
    "\\boxed{(7 + 5) * 2 = 24 = 24}",
    "\\boxed{7 5 2}",
    "\\boxed{24 or 25}",
  ],
)
def test_invalid_answers(completion):
  verdict = check(completion)
  assert verdict.status == "invalid" and verdict.reward == 0.0, verdict


@pytest.mark.parametrize(
  "payload",
  [
    "__import__('os').system('touch /tmp/pwned_countdown')",
    "(1).__class__.__bases__",
    "open('/etc/passwd').read()",
    "2 ** 100000000",
    "(lambda: 24)()",
    "0x18",  # Python reads these as 24, a person would not
    "2_4",
    "0b11000",
    "[24][0]",
    "24 if 1 else 0",
    "'24'",
  ],
)
def test_code_injection_is_invalid_and_never_evaluated(payload, tmp_path):
  verdict = check("\\boxed{" + payload + "}", numbers=[24, 2, 3, 5])
  assert verdict.status == "invalid", (payload, verdict)


def test_bad_verifier_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match="integer target"):
    verify("\\boxed{1 + 2}", "three", numbers=[1, 2])
  with pytest.raises(ValueError, match="no `numbers`"):
    verify("\\boxed{1 + 2}", 3, numbers=[])


def test_registered_and_accepts_string_reference():
  assert base.get("countdown") is verify
  assert base.get("countdown")("\\boxed{1 + 2}", "3", numbers=[1, 2]).status == "ok"


def test_module_does_not_import_jax():
  code = "import sys, jaxrl_verify.verifiers.countdown; print('jax' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
