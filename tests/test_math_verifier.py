"""Tests for the `math` verifier: public and held-out agreement, extraction, anti-gaming."""

import fractions
import json
import pathlib

import pytest
import sympy

from jaxrl_verify.verifiers import base, math_parse
from jaxrl_verify.verifiers.math import (
  canonical_answer,
  extract_final_answer,
  is_equivalent,
  verify_math,
)

_REPO = pathlib.Path(__file__).resolve().parents[1]
PUBLIC = _REPO / "tests" / "data" / "math_public.jsonl"
HELDOUT = _REPO / "tests" / "data" / "math_heldout.jsonl"


def _load(path: pathlib.Path) -> list[dict]:
  if not path.exists():
    raise FileNotFoundError(f"{path} is missing: the math cases ship in tests/data/.")
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("path", [PUBLIC, HELDOUT], ids=["public", "heldout"])
def test_agrees_with_reference_judgement_on_every_case(path):
  cases = _load(path)
  assert len(cases) >= 45
  disagreements = [
    (c["why"], c["completion"], c["reference"], verify_math(c["completion"], c["reference"]))
    for c in cases
    if (verify_math(c["completion"], c["reference"]).status == "ok") != c["expect_correct"]
  ]
  assert not disagreements


def test_registered_under_math():
  assert base.get("math") is verify_math


@pytest.mark.parametrize(
  "completion,expected",
  [
    (r"so \boxed{\frac{a^{2}}{\sqrt{b}}} done", [r"\frac{a^{2}}{\sqrt{b}}"]),
    (r"\boxed{\{1,2\}} and \fbox{3}", [r"\{1,2\}", "3"]),
    ("work\n#### 1,200\n", ["1,200"]),
    ("The final answer is $x^2$. Done.", ["x^2"]),
    ("Reasoning...\nAnswer: 3.5", ["3.5"]),
    ("no marked answer 17", []),
  ],
)
def test_extract_final_answer(completion, expected):
  assert extract_final_answer(completion) == expected


@pytest.mark.parametrize(
  "completion,reference,status",
  [
    (r"\boxed{3} \boxed{4}", "4", "invalid"),
    (r"\boxed{\pm 3}", "3", "invalid"),
    (r"\boxed{3, 4, 5}", "4", "invalid"),
    (r"\boxed{}", "0", "invalid"),
    (r"\boxed{\text{final answer}}", "1", "invalid"),
    ("nothing marked here", "1", "invalid"),
    (r"\boxed{x = 5 + 1 = 7 = 6}", "6", "wrong"),
    # Too large to evaluate: refused at once, and penalised rather than masked.
    (r"\boxed{9^{9^{9^{9}}}}", "1", "invalid"),
    (r"\boxed{100000!}", "1", "invalid"),
    (r"\boxed{(x+1)^{10000}}", "1", "wrong"),  # huge values must not overflow to "equal"
    (r"\boxed{3 4}", "12", "wrong"),  # numbers side by side are not a product
    (r"\boxed{2\frac{1}{2}}", "5/2", "ok"),  # a mixed number
    (r"\boxed{-2x < -10}", "x > 5", "ok"),
    (r"\boxed{-2x > -10}", "x > 5", "wrong"),
    ("\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}", "1", "invalid"),  # too long
    ("\\boxed{" + "{" * 400 + "1" + "}" * 400 + "}", "1", "invalid"),  # too deep
    (r"\boxed{x = \pm 2}", r"\pm 2", "ok"),
    (r"\boxed{-2, 2}", r"2,-2", "ok"),
  ],
)
def test_statuses(completion, reference, status):
  verdict = verify_math(completion, reference)
  assert verdict.status == status, verdict
  assert verdict.reward == (1.0 if status == "ok" else 0.0)


@pytest.mark.parametrize(
  "text",
  [
    "__import__('os').system('echo pwned')",
    "().__class__.__bases__[0]",
    r"\boxed{lambda: 1}",
    "x" * 20000,
  ],
)
def test_hostile_text_is_never_executed_and_never_raises(text):
  verdict = verify_math(rf"\boxed{{{text}}}", "1")
  assert verdict.status in ("wrong", "invalid")


def test_exact_rationals_against_fractions():
  # 40 fractions, compared with Python's exact fractions as the reference.
  for num in range(1, 9):
    for den in (3, 7, 12, 25, 64):
      value = fractions.Fraction(num, den)
      latex = rf"\frac{{{num * 3}}}{{{den * 3}}}"
      assert is_equivalent(latex, f"{value.numerator}/{value.denominator}")
      assert not is_equivalent(latex, f"{value.numerator + 1}/{value.denominator}")
      assert math_parse.parse_expr(latex) == sympy.Rational(value.numerator, value.denominator)


def test_parser_refuses_huge_powers_before_evaluating():
  with pytest.raises(math_parse.TooLarge):
    math_parse.parse_expr("2^{2^{2^{2^{2^{2}}}}}")
  assert math_parse.parse_expr("2^{2^{2^{2}}}") == 2**16


def test_canonical_answer_groups_equivalent_answers_for_majority_vote():
  same = [r"\boxed{\frac{1}{2}}", r"\boxed{0.5}", "The answer is 1/2.", r"\boxed{x = \dfrac12}"]
  assert len({canonical_answer(t) for t in same}) == 1
  assert canonical_answer(r"\boxed{(x+1)^2}") == canonical_answer(r"\boxed{x^2+2x+1}")
  assert canonical_answer(r"\boxed{\sqrt{8}}") == canonical_answer(r"\boxed{2\sqrt2}")
  assert canonical_answer(r"\boxed{\{3,1\}}") == canonical_answer(r"\boxed{\{1,3\}}")
  assert canonical_answer(r"\boxed{(3,1)}") != canonical_answer(r"\boxed{(1,3)}")
  assert canonical_answer(r"\boxed{1/2}") != canonical_answer(r"\boxed{1/3}")
  assert canonical_answer(r"\boxed{3} \boxed{4}") is None
  assert canonical_answer("no answer") is None
