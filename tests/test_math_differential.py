"""The math verifier on the generated differential corpus (`tests/math_corpus.py`) and on
property-based renderings: equal values accepted in every rendering, near misses rejected.

The corpus's ground truth comes from how each pair was built, not from a verifier. Where
math-verify disagrees with the ground truth, `tests/data/math_differential.jsonl` records
both verdicts with a triage; regenerate it with `python tests/math_corpus.py`.
"""

import collections
import fractions
import json
import pathlib

import math_corpus
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrl_verify.verifiers.math import is_equivalent

TRIAGE = pathlib.Path(__file__).parent / "data" / "math_differential.jsonl"
Q = fractions.Fraction


@pytest.fixture(scope="module")
def corpus():
  return math_corpus.corpus(seed=0)


def test_corpus_no_false_accept_and_no_undocumented_false_reject(corpus):
  assert len(corpus) >= 5000
  kinds = collections.Counter(p["kind"] for p in corpus)
  assert len(kinds) == len(math_corpus.KINDS) and min(kinds.values()) >= 50, kinds
  triage = {math_corpus.key(r): r for r in map(json.loads, TRIAGE.open(encoding="utf-8"))}
  false_accepts, false_rejects = [], []
  for pair in corpus:
    verdict = math_corpus.ours(pair)
    if verdict and not pair["equal"]:
      false_accepts.append(pair)
    elif not verdict and pair["equal"]:
      documented = triage.get(math_corpus.key(pair), {}).get("verdict") == "ambiguous"
      if not documented:
        false_rejects.append(pair)
  assert not false_accepts, false_accepts[:5]
  assert not false_rejects, false_rejects[:5]


def test_triage_file_is_current_and_fully_triaged(corpus):
  """Every triaged pair is still in the corpus, our recorded verdict is today's, and
  each has a verdict and a reason."""
  keys = {math_corpus.key(p) for p in corpus}
  rows = [json.loads(line) for line in TRIAGE.open(encoding="utf-8")]
  assert rows
  for row in rows:
    assert math_corpus.key(row) in keys, row
    assert row["verdict"] in ("ours-right", "ambiguous", "ours-wrong"), row
    assert row["why"], row
    assert math_corpus.ours(row) == row["ours"], row
    assert row["verdict"] != "ours-wrong", row  # Those are bugs to fix, not to record.


def _render(q: Q, style: int) -> str:
  """One of several exact renderings of the rational q."""
  forms = math_corpus._frac_forms(q)
  return forms[style % len(forms)]


rationals = st.fractions(min_value=-1000, max_value=1000, max_denominator=64)


@settings(max_examples=300, deadline=None)
@given(q=rationals, a=st.integers(0, 20), b=st.integers(0, 20))
def test_equal_rationals_in_random_renderings_are_accepted(q, a, b):
  assert is_equivalent(_render(q, a), _render(q, b))


@settings(max_examples=300, deadline=None)
@given(p=rationals, q=rationals, a=st.integers(0, 20), b=st.integers(0, 20))
def test_distinct_rationals_are_rejected(p, q, a, b):
  if p != q:
    assert not is_equivalent(_render(p, a), _render(q, b))


@settings(max_examples=200, deadline=None)
@given(
  mantissa=st.integers(100, 999),
  exp=st.integers(-12, 12),
  form=st.sampled_from(["{m}e{e}", "{m}E{e}", "{m}\\times 10^{{{e}}}", "{m}\\cdot10^{{{e}}}"]),
)
def test_scientific_notation_equals_its_decimal(mantissa, exp, form):
  m = Q(mantissa, 100)
  value = m * Q(10) ** exp
  text = form.format(m=math_corpus._decimal(m), e=exp)
  assert is_equivalent(text, math_corpus._decimal(value))
  assert not is_equivalent(text, math_corpus._decimal(value * 10))


@settings(max_examples=200, deadline=None)
@given(
  xs=st.sets(st.integers(-50, 50), min_size=1, max_size=6),
  ys=st.sets(st.integers(-50, 50), min_size=1, max_size=6),
  op=st.sampled_from(
    [("\\cup", set.union), ("\\cap", set.intersection), ("\\setminus", set.difference)]
  ),
  data=st.data(),
)
def test_set_operations_equal_their_result_and_nothing_else(xs, ys, op, data):
  latex, fn = op
  a = data.draw(st.permutations(sorted(xs)))
  b = data.draw(st.permutations(sorted(ys)))
  render = lambda members: "\\{" + ", ".join(map(str, members)) + "\\}"  # noqa: E731
  result = fn(set(xs), set(ys))
  expression = f"{render(a)} {latex} {render(b)}"
  assert is_equivalent(expression, render(sorted(result)) if result else "\\emptyset")
  assert not is_equivalent(expression, render(sorted(result ^ {51})))
