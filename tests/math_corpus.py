r"""A generated corpus of (answer, reference) pairs for differential testing of the math
verifier: equal values in many renderings, and near misses that must be rejected.

  python tests/math_corpus.py [--seed 0] [--triage tests/data/math_differential.jsonl]

run alone, it judges the whole corpus with our verifier and with math-verify
(`pip install math-verify`, not a dependency of the package) and writes every pair on
which either of them is wrong against the corpus's own ground truth, or on which they
disagree, to the triage file, each with both verdicts; the verdict and why of a pair
already triaged are kept (`verdict`: `ours-right`, `ambiguous` or `ours-wrong`, and
`why`), new pairs get `verdict: "untriaged"`. `tests/test_math_differential.py` runs the
corpus through our verifier in CI and checks it against that file.

Every pair is built from a value the generator knows exactly (a rational, a surd, a set
of rationals, an interval ...), so `equal` is ground truth by construction, never a
judgement of either verifier. Kinds (the `kind` field):

  fraction      \frac, \dfrac, \tfrac, \cfrac, a/b, decimals, negative forms, mixed numbers
  continued     continued fractions written with \cfrac
  scientific    1.5e3, 1.5E3, 1.5\times10^{3}, 1.5\cdot10^3, engineering exponents
  percent       a percentage against the same number with a percent sign
  thousands     1,234,567, 1{,}234{,}567, 1\,234\,567
  surd          \sqrt{8} = 2\sqrt{2}, rationalised denominators, \sqrt[3]{27} = 3
  set           finite sets in any order; unions, intersections, differences
  builder       set-builder forms {x | a < x < b} against intervals
  interval      intervals, unions of intervals, inequalities
  tuple         ordered pairs and triples
  matrix        pmatrix/bmatrix
  equation      a line in several arrangements
  inequality    x > a written as a < x, x \in (a, \infty)
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import random
import sys
from collections.abc import Iterator

Q = fractions.Fraction


def _frac_forms(q: Q) -> list[str]:
  """LaTeX renderings of the rational q (all equal to it)."""
  n, d = q.numerator, q.denominator
  if d == 1:
    forms = [str(n), f"{n}.0", f"\\frac{{{2 * n}}}{{2}}", f"{n}/1"]
    return forms
  sign, a = ("-" if n < 0 else ""), abs(n)
  forms = [
    f"{sign}\\frac{{{a}}}{{{d}}}",
    f"{sign}\\dfrac{{{a}}}{{{d}}}",
    f"{sign}\\tfrac{{{a}}}{{{d}}}",
    f"{sign}\\cfrac{{{a}}}{{{d}}}",
    f"{sign}{a}/{d}",
    f"\\frac{{{n}}}{{{d}}}",
    f"{sign}\\frac{{{2 * a}}}{{{2 * d}}}",
  ]
  if a < 10 and d < 10:
    forms.append(f"{sign}\\frac{a}{d}")  # The compact \frac12 form.
  dd = d
  for p in (2, 5):
    while dd % p == 0:
      dd //= p
  if dd == 1:  # A terminating decimal.
    forms.append(_decimal(q))
  if a > d:
    whole, rest = divmod(a, d)
    if rest:
      forms.append(f"{sign}{whole}\\frac{{{rest}}}{{{d}}}")
  return forms


def _decimal(q: Q) -> str:
  """The exact decimal of a terminating rational."""
  sign = "-" if q < 0 else ""
  q = abs(q)
  digits = 0
  while (q * 10**digits).denominator != 1:
    digits += 1
  scaled = int(q * 10**digits)
  if digits == 0:
    return f"{sign}{scaled}"
  s = str(scaled).rjust(digits + 1, "0")
  return f"{sign}{s[:-digits]}.{s[-digits:]}"


def _near_misses(q: Q) -> list[Q]:
  out = {q + 1, q - 1, -q if q else Q(1), q * 2, q + Q(1, 100)}
  if q.numerator and q.denominator != 1:
    out.add(Q(q.denominator, q.numerator))  # The reciprocal.
  out.discard(q)
  return sorted(out)


def _rationals(rng: random.Random, count: int) -> Iterator[Q]:
  for _ in range(count):
    d = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 20, 25, 40, 125])
    n = rng.randint(-60, 60)
    yield Q(n, d)


def fractions_kind(rng: random.Random) -> Iterator[dict]:
  for q in _rationals(rng, 120):
    forms = _frac_forms(q)
    ref = forms[0]
    for f in forms:
      yield _pair(f, ref, True, "fraction")
    for wrong in _near_misses(q)[:3]:
      yield _pair(_frac_forms(wrong)[0], ref, False, "fraction")
    if q.denominator == 3:  # A rounded decimal is not the exact third.
      yield _pair(f"{float(q):.2f}", ref, False, "fraction")


def continued_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(60):
    terms = [rng.randint(0, 4)] + [rng.randint(1, 5) for _ in range(rng.randint(1, 3))]
    value = Q(terms[-1])
    for t in reversed(terms[:-1]):
      value = t + 1 / value
    latex = str(terms[-1])
    for t in reversed(terms[:-1]):
      latex = f"{t}+\\cfrac{{1}}{{{latex}}}"
    ref = _frac_forms(value)[0]
    yield _pair(latex, ref, True, "continued")
    yield _pair(latex, _frac_forms(value + 1)[0], False, "continued")


def scientific_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(150):
    mantissa = Q(rng.randint(11, 99), 10)
    exp = rng.randint(-6, 9)
    value = mantissa * Q(10) ** exp
    m = _decimal(mantissa)
    ref = _decimal(value)
    forms = [
      f"{m}e{exp}",
      f"{m}E{exp}",
      f"{m}e{'+' if exp >= 0 else ''}{exp}",
      f"{m}\\times10^{{{exp}}}",
      f"{m} \\times 10^{{{exp}}}",
      f"{m}\\cdot10^{{{exp}}}",
    ]
    eng = exp - exp % 3  # Engineering notation: the exponent a multiple of 3.
    forms.append(f"{_decimal(mantissa * Q(10) ** (exp - eng))}\\times 10^{{{eng}}}")
    for f in forms:
      yield _pair(f, ref, True, "scientific")
    yield _pair(f"{m}\\times10^{{{exp + 1}}}", ref, False, "scientific")
    yield _pair(f"{m}e{exp - 1}", ref, False, "scientific")


def percent_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(60):
    p = rng.randint(1, 199)
    yield _pair(f"{p}\\%", str(p), True, "percent")
    yield _pair(f"{p}%", f"{p}\\%", True, "percent")
    yield _pair(f"{p + 1}\\%", f"{p}\\%", False, "percent")


def thousands_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(80):
    n = rng.randint(1_000, 99_999_999)
    grouped = f"{n:,}"
    ref = str(n)
    for f in (grouped, grouped.replace(",", "{,}"), grouped.replace(",", "\\,")):
      yield _pair(f, ref, True, "thousands")
    yield _pair(f"{n + 1000:,}", ref, False, "thousands")


def surd_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(80):
    k = rng.randint(2, 9)
    s = rng.choice([2, 3, 5, 6, 7])
    ref = f"{k}\\sqrt{{{s}}}"
    for f in (f"\\sqrt{{{k * k * s}}}", f"\\sqrt{{{s}}}\\cdot {k}", f"{k}\\sqrt{s}"):
      yield _pair(f, ref, True, "surd")
    yield _pair(f"\\sqrt{{{k * k * s + 1}}}", ref, False, "surd")
    yield _pair(
      f"\\frac{{{k}}}{{\\sqrt{{{s}}}}}", f"\\frac{{{k}\\sqrt{{{s}}}}}{{{s}}}", True, "surd"
    )
    yield _pair(f"\\frac{{{k}}}{{\\sqrt{{{s}}}}}", f"{k}\\sqrt{{{s}}}", False, "surd")
    cube = rng.randint(2, 6)
    yield _pair(f"\\sqrt[3]{{{cube**3}}}", str(cube), True, "surd")


def _set(items) -> str:
  return "\\{" + ", ".join(items) + "\\}"


def sets_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(150):
    universe = rng.sample(range(-9, 20), 7)
    a = sorted(rng.sample(universe, 4))
    b = sorted(rng.sample(universe, 4))
    ref_members = lambda xs: _set(str(x) for x in sorted(xs))  # noqa: E731
    shuffled = a[:]
    rng.shuffle(shuffled)
    yield _pair(_set(str(x) for x in shuffled), ref_members(a), True, "set")
    yield _pair(_set(str(x) for x in a[:-1]), ref_members(a), False, "set")
    sa, sb = ref_members(a), ref_members(b)
    for op, value in (
      ("\\cup", set(a) | set(b)),
      ("\\cap", set(a) & set(b)),
      ("\\setminus", set(a) - set(b)),
    ):
      ref = ref_members(value) if value else "\\emptyset"
      yield _pair(f"{sa} {op} {sb}", ref, True, "set")
      wrong = set(value) ^ {universe[0]}
      yield _pair(f"{sa} {op} {sb}", ref_members(wrong) if wrong else "\\emptyset", False, "set")


def _interval(lo, hi, left, right) -> str:
  lo_s = "-\\infty" if lo is None else _frac_forms(Q(lo))[0]
  hi_s = "\\infty" if hi is None else _frac_forms(Q(hi))[0]
  return f"{'[' if left else '('}{lo_s}, {hi_s}{']' if right else ')'}"


def intervals_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(120):
    lo = rng.randint(-9, 5)
    hi = lo + rng.randint(1, 6)
    left, right = rng.random() < 0.5, rng.random() < 0.5
    ref = _interval(lo, hi, left, right)
    lop, rop = ("\\le" if left else "<"), ("\\le" if right else "<")
    yield _pair(ref.replace(", ", ","), ref, True, "interval")
    yield _pair(f"{lo} {lop} x {rop} {hi}", ref, True, "interval")
    yield _pair(_interval(lo, hi, not left, right), ref, False, "interval")
    yield _pair(_interval(lo, hi + 1, left, right), ref, False, "interval")
    # A union of two disjoint intervals, in either order.
    lo2 = hi + rng.randint(1, 3)
    ref_u = f"{_interval(None, lo, False, left)} \\cup {_interval(lo2, None, True, False)}"
    swapped = f"{_interval(lo2, None, True, False)} \\cup {_interval(None, lo, False, left)}"
    yield _pair(swapped, ref_u, True, "interval")
    yield _pair(_interval(None, lo, False, left), ref_u, False, "interval")
    # Two overlapping intervals: their union and their intersection as one interval.
    a, b, c, d = lo, lo + 3, lo + 2, lo + 6
    yield _pair(f"[{a}, {b}] \\cup [{c}, {d}]", f"[{a}, {d}]", True, "interval")
    yield _pair(f"[{a}, {b}] \\cap [{c}, {d}]", f"[{c}, {b}]", True, "interval")
    yield _pair(f"[{a}, {b}] \\cap [{c}, {d}]", f"[{a}, {b}]", False, "interval")


def builder_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(80):
    lo = rng.randint(-9, 9)
    hi = lo + rng.randint(1, 9)
    sep = rng.choice(["\\mid", "|", ":"])
    yield _pair(f"\\{{x {sep} {lo} < x < {hi}\\}}", f"({lo}, {hi})", True, "builder")
    yield _pair(f"\\{{x {sep} x \\ge {lo}\\}}", f"[{lo}, \\infty)", True, "builder")
    yield _pair(f"\\{{x {sep} x > {lo}\\}}", f"[{lo}, \\infty)", False, "builder")
    yield _pair(f"\\{{x {sep} {lo} < x < {hi}\\}}", f"({lo}, {hi + 1})", False, "builder")


def tuples_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(100):
    xs = [Q(rng.randint(-9, 9), rng.choice([1, 1, 2, 3])) for _ in range(rng.choice([2, 3]))]
    ref = "(" + ", ".join(_frac_forms(x)[0] for x in xs) + ")"
    alt = "(" + ",".join(rng.choice(_frac_forms(x)) for x in xs) + ")"
    yield _pair(alt, ref, True, "tuple")
    yield _pair(f"\\left({', '.join(_frac_forms(x)[0] for x in xs)}\\right)", ref, True, "tuple")
    if len(set(xs)) > 1:
      rev = "(" + ", ".join(_frac_forms(x)[0] for x in reversed(xs)) + ")"
      yield _pair(rev, ref, xs == xs[::-1], "tuple")
    bumped = [*xs[:-1], xs[-1] + 1]
    yield _pair("(" + ", ".join(_frac_forms(x)[0] for x in bumped) + ")", ref, False, "tuple")


def _matrix(rows, env="pmatrix") -> str:
  body = " \\\\ ".join(" & ".join(_frac_forms(x)[0] for x in r) for r in rows)
  return f"\\begin{{{env}}} {body} \\end{{{env}}}"


def matrix_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(80):
    n, m = rng.choice([(2, 2), (2, 1), (1, 3), (3, 3)])
    rows = [[Q(rng.randint(-9, 9), rng.choice([1, 2])) for _ in range(m)] for _ in range(n)]
    ref = _matrix(rows)
    yield _pair(_matrix(rows, "bmatrix"), ref, True, "matrix")
    wrong = [r[:] for r in rows]
    wrong[0][0] += 1
    yield _pair(_matrix(wrong), ref, False, "matrix")
    transposed = [list(c) for c in zip(*rows)]
    if transposed != rows:
      yield _pair(_matrix(transposed), ref, False, "matrix")


def equation_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(100):
    a, b = rng.randint(1, 9), rng.randint(-9, 9)
    sign = "+" if b >= 0 else "-"
    ref = f"y = {a}x {sign} {abs(b)}"
    yield _pair(f"{a}x {sign} {abs(b)} = y", ref, True, "equation")
    yield _pair(f"y - {a}x = {b}", ref, True, "equation")
    yield _pair(f"{2 * a}x - 2y = {-2 * b}", ref, True, "equation")
    yield _pair(f"y = {a}x {'-' if b >= 0 else '+'} {abs(b) + 1}", ref, False, "equation")
    yield _pair(f"y = {a + 1}x {sign} {abs(b)}", ref, False, "equation")


def inequality_kind(rng: random.Random) -> Iterator[dict]:
  for _ in range(80):
    a = rng.randint(-9, 9)
    yield _pair(f"{a} < x", f"x > {a}", True, "inequality")
    yield _pair(f"x \\in ({a}, \\infty)", f"x > {a}", True, "inequality")
    yield _pair(f"x \\ge {a}", f"x > {a}", False, "inequality")
    yield _pair(f"x < {a}", f"x > {a}", False, "inequality")


KINDS = (
  fractions_kind,
  continued_kind,
  scientific_kind,
  percent_kind,
  thousands_kind,
  surd_kind,
  sets_kind,
  intervals_kind,
  builder_kind,
  tuples_kind,
  matrix_kind,
  equation_kind,
  inequality_kind,
)


def _pair(answer: str, reference: str, equal: bool, kind: str) -> dict:
  return {"answer": answer, "reference": reference, "equal": bool(equal), "kind": kind}


def corpus(seed: int = 0) -> list[dict]:
  """Every pair, deduplicated, in a fixed order for `seed`."""
  rng = random.Random(seed)
  seen, out = set(), []
  for kind in KINDS:
    for pair in kind(rng):
      key = (pair["answer"], pair["reference"])
      if key not in seen:
        seen.add(key)
        out.append(pair)
  return out


def key(pair: dict) -> str:
  return f"{pair['answer']}\x00{pair['reference']}"


def ours(pair: dict) -> bool:
  """Our verifier's verdict on the pair: the answer boxed in a completion."""
  from jaxrl_verify.verifiers.math import verify_math

  return (
    verify_math(f"The answer is $\\boxed{{{pair['answer']}}}$.", pair["reference"]).status == "ok"
  )


def theirs(pair: dict) -> bool | None:
  """math-verify's verdict (gold first, as its docs say), or None if it raised."""
  from math_verify import parse, verify

  try:
    gold = parse(f"${pair['reference']}$")
    answer = parse(f"\\boxed{{{pair['answer']}}}")
    return bool(verify(gold, answer))
  except Exception:  # noqa: BLE001 - a crash is recorded as no verdict.
    return None


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--triage",
    default=os.path.join(os.path.dirname(__file__), "data", "math_differential.jsonl"),
  )
  args = parser.parse_args(argv)
  old = {}
  if os.path.exists(args.triage):
    with open(args.triage, encoding="utf-8") as f:
      old = {key(r): r for r in map(json.loads, f)}
  pairs = corpus(args.seed)
  rows, counts = [], {"pairs": len(pairs), "ours_wrong": 0, "theirs_wrong": 0, "disagree": 0}
  for pair in pairs:
    mine, other = ours(pair), theirs(pair)
    counts["ours_wrong"] += mine != pair["equal"]
    counts["theirs_wrong"] += other != pair["equal"]
    counts["disagree"] += mine != other
    if mine == pair["equal"] and other == pair["equal"]:
      continue
    prior = old.get(key(pair), {})
    rows.append(
      {
        **pair,
        "ours": mine,
        "math_verify": other,
        "verdict": prior.get("verdict", "untriaged"),
        "why": prior.get("why", ""),
      }
    )
  tmp = args.triage + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
  os.replace(tmp, args.triage)
  print(json.dumps(counts))
  return 0


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  sys.exit(main())
