"""Answer structures and their equivalence for the `math` verifier.

A normalised answer string becomes one of these tagged tuples (`Answer`):

  ("value", [side, ...], [op, ...])   a scalar, or a relation chain `a = b < c` (sympy sides)
  ("text", str)                       a word answer ("Evelyn"), compared case-insensitively
  ("choice", letter)                  a multiple-choice letter
  ("list", [Answer, ...])             several answers (`3, 4`, `3 or 4`, `\\pm`)
  ("tuple", open, close, [Answer])    `(a, b)`, `[a, b)`: tuples and intervals alike
  ("set", [Answer, ...])              `\\{a, b\\}`, compared ignoring order
  ("matrix", [[Answer, ...], ...])    `\\begin{pmatrix}` and friends
  ("union", [Answer, ...])            `A \\cup B`
  ("setop", [Answer, ...], [op, ...]) `A \\cap B \\setminus C`, left to right (op: cap,
                                      setminus; a cup among them too)

A set-builder form `\\{x \\mid 1 < x \\le 3\\}` (or `|`, `:`) over one variable becomes
the interval its condition describes. Whenever a union or a set operation is compared,
both answers are evaluated as sympy sets (finite sets of numbers, and 2-element tuples
read as intervals) and compared as sets, so `[0, 2] \\cup [1, 3]` equals `[0, 3]`.

Scalars are compared exactly when both are rational, numerically with a relative
tolerance when both are numbers, and at fixed pseudo-random points when they have free
symbols (no `simplify`: a polynomial identity test is fast and does not hang).
"""

from __future__ import annotations

import re
from typing import Any

import sympy

from jaxrl_verify.verifiers import math_parse

Answer = tuple[Any, ...]
REL_TOL = 1e-9
_POINTS = (
    sympy.Rational(3141, 4096), sympy.Rational(2718, 2048), sympy.Rational(1414, 3001),
    sympy.Rational(1732, 997), sympy.Rational(577, 1409),
)  # fmt: skip
_MATRIX_RE = re.compile(r"^\\begin{([pbvBV]?matrix|array)}(?:{[^}]*})?(.*)\\end{\1}$", re.S)
_WORD_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")
_MATH_WORDS = {"sqrt", "frac", "sin", "cos", "tan", "sec", "csc", "cot", "log", "exp", "infty",
               "inf", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan"}  # fmt: skip
_NON_ANSWER_RE = re.compile(r"\b(answer|correct|solution is|see above|as shown|above|below)\b")
_CHOICE_RE = re.compile(r"^\(?([A-J])\)?(?:[\s.:)].*)?$")
_OPEN, _CLOSE = ("(", "[", "\\{", "{"), (")", "]", "\\}", "}")


def _split_top(s: str, seps: tuple[str, ...]) -> list[str]:
  """Splits `s` at any of `seps` that is outside brackets."""
  parts, depth, start, i = [], 0, 0, 0
  while i < len(s):
    if s.startswith(("\\{", "\\}"), i):
      depth += 1 if s[i + 1] == "{" else -1
      i += 2
      continue
    ch = s[i]
    if ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif depth == 0:
      sep = next((p for p in seps if s.startswith(p, i)), None)
      if sep is not None:
        parts.append(s[start:i])
        i += len(sep)
        start = i
        continue
    i += 1
  parts.append(s[start:])
  return [p.strip() for p in parts]


def _outer_bracket(s: str) -> tuple[str, str, str] | None:
  """(open, inner, close) when one bracket pair encloses all of `s`."""
  opener = next((o for o in ("\\{", "(", "[") if s.startswith(o)), None)
  closer = next((c for c in ("\\}", ")", "]") if s.endswith(c)), None)
  if opener is None or closer is None or (opener == "\\{") != (closer == "\\}"):
    return None
  inner = s[len(opener) : len(s) - len(closer)]
  depth = 0
  for ch in inner.replace("\\{", "{").replace("\\}", "}"):
    depth += 1 if ch in "([{" else -1 if ch in ")]}" else 0
    if depth < 0:
      return None
  return (opener, inner, closer) if depth == 0 else None


_SET_OPS = ("\\cup", "\\cap", "\\setminus", "\\backslash")
_SET_OP_NAMES = {
  "\\cup": "cup",
  "\\cap": "cap",
  "\\setminus": "setminus",
  "\\backslash": "setminus",
}
_BUILDER_RE = re.compile(r"^\s*([a-zA-Z])\s*(?:\\mid|\||:)\s*(.+)$", re.S)


def _set_operators(s: str) -> list[str]:
  """The set operators of `s` outside brackets, in order (a command name, not a prefix)."""
  ops, depth, i = [], 0, 0
  while i < len(s):
    if s.startswith(("\\{", "\\}"), i):
      depth += 1 if s[i + 1] == "{" else -1
      i += 2
      continue
    if s[i] in "([{":
      depth += 1
    elif s[i] in ")]}":
      depth -= 1
    elif depth == 0 and s[i] == "\\":
      op = next((o for o in _SET_OPS if s.startswith(o, i)), None)
      if op and not s[i + len(op) : i + len(op) + 1].isalpha():
        ops.append(op)
        i += len(op)
        continue
    i += 1
  return ops


def parse_answer(s: str) -> Answer:
  """Parses a normalised answer string into an `Answer` (see the module docstring).

  Raises:
    math_parse.TooLarge: a value too large to evaluate.
  """
  if not s:
    return ("list", [])
  alternatives = re.split(r"\s+(?:or|and)\s+", s)
  if len(alternatives) > 1:
    return ("list", [parse_answer(a) for a in alternatives])
  choice = _CHOICE_RE.match(s)
  if choice and (len(s) == 1 or s[0] == "(" or not re.search(r"[a-zA-Z]{2}", s[1:])):
    return ("choice", choice.group(1))
  matrix = _MATRIX_RE.match(s)
  if matrix:
    rows = [r for r in matrix.group(2).split("\\\\") if r.strip()]
    return ("matrix", [[parse_answer(c.strip()) for c in r.split("&")] for r in rows])
  ops = _set_operators(s)
  if ops:
    operands = [parse_answer(x) for x in _split_top(s, _SET_OPS)]
    if set(ops) == {"\\cup"}:
      return ("union", operands)
    return ("setop", operands, [_SET_OP_NAMES[op] for op in ops])
  bracket = _outer_bracket(s)
  builder = _BUILDER_RE.match(bracket[1]) if bracket and bracket[0] == "\\{" else None
  if builder:  # `\{x \mid a < x < b\}`: the interval the condition describes.
    condition = as_interval(parse_answer(builder.group(2)))
    if condition[0] == "tuple":
      return condition
  if bracket and (len(_split_top(bracket[1], (",",))) > 1 or bracket[0] == "\\{"):
    items = [parse_answer(x) for x in _split_top(bracket[1], (",",)) if x]
    if bracket[0] == "\\{":
      return ("set", items)
    return ("tuple", bracket[0], bracket[2], items)
  items = _split_top(s, (",", ";"))
  if len(items) > 1:
    return ("list", [parse_answer(x) for x in items])
  if "\\pm" in s or "\\mp" in s:
    plus = s.replace("\\pm", "+", 1).replace("\\mp", "-", 1)
    minus = s.replace("\\pm", "-", 1).replace("\\mp", "+", 1)
    return ("list", [parse_answer(plus), parse_answer(minus)])
  if any(w.lower() not in _MATH_WORDS for w in _WORD_RE.findall(s)):
    return ("text", " ".join(re.sub(r"[^a-z0-9 ]", " ", s.lower()).split()))
  try:
    sides, ops = math_parse.parse_chain(s)
  except math_parse.ParseError:
    return ("text", " ".join(s.split()))
  return ("value", sides, ops)


def is_non_answer(ans: Answer) -> bool:
  """A box that states no answer ("the correct answer", "see above") or is empty."""
  if ans[0] == "list":
    return not ans[1] or any(is_non_answer(a) for a in ans[1])
  return ans[0] == "text" and (not ans[1] or bool(_NON_ANSWER_RE.search(ans[1])))


def count_answers(ans: Answer) -> int:
  """How many distinct answers `ans` states (a list counts its distinct members)."""
  if ans[0] != "list":
    return 1
  distinct: list[Answer] = []
  for a in ans[1]:
    if not any(equivalent(a, d) for d in distinct):
      distinct.append(a)
  return len(distinct)


# --- scalar comparison ---


def _finite(x: sympy.Expr) -> bool:
  return bool(x.is_number and x.is_finite) and not x.has(sympy.nan, sympy.zoo)


def _close(x: sympy.Expr, y: sympy.Expr) -> bool:
  """|x - y| <= REL_TOL * max(|x|, |y|) for evaluated numbers, in sympy's unbounded range
  (Python floats would overflow to inf and make any two huge values "close")."""
  if not (_finite(x) and _finite(y)):
    return False
  scale = max(abs(x), abs(y))
  return scale == 0 or bool(abs(x - y) <= REL_TOL * scale)


def scalars_equal(a: sympy.Expr, b: sympy.Expr) -> bool:
  """Whether two sympy scalars are equal (exactly for rationals, else numerically)."""
  if a == b:
    return True
  if a.is_Rational and b.is_Rational:
    return False
  if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
    return False
  symbols = sorted(a.free_symbols | b.free_symbols, key=str)
  if not symbols:
    try:
      return _close(a.evalf(30), b.evalf(30))
    except (TypeError, ValueError):
      return False
  agreed = 0
  for k in range(len(_POINTS)):
    subs = {s: _POINTS[(k + j) % len(_POINTS)] + j for j, s in enumerate(symbols)}
    try:
      va, vb = a.xreplace(subs).evalf(30), b.xreplace(subs).evalf(30)
      if not (_finite(va) or _finite(vb)):
        continue  # outside both domains at this point
      if not _close(va, vb):
        return False
      agreed += 1
    except (TypeError, ValueError, ZeroDivisionError):
      continue
  return agreed >= 3


def _ratio_constant(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
  """The constant c with a = c*b at all the sample points (evaluated), or None."""
  symbols = sorted(a.free_symbols | b.free_symbols, key=str)
  ratios = []
  for k in range(len(_POINTS)):
    subs = {s: _POINTS[(k + j) % len(_POINTS)] + j for j, s in enumerate(symbols)}
    try:
      va, vb = a.xreplace(subs).evalf(30), b.xreplace(subs).evalf(30)
    except (TypeError, ValueError, ZeroDivisionError):
      continue
    if not (_finite(va) and _finite(vb)):
      continue
    if vb == 0:
      if va != 0:
        return None
      continue
    ratios.append((va / vb).evalf(30))
  if len(ratios) < 2 or not all(_close(r, ratios[0]) for r in ratios) or ratios[0] == 0:
    return None
  return ratios[0]


# --- structure comparison ---


def strip_label(ans: Answer) -> Answer:
  """`x = 5 + 6 = 11` -> the chain `5 + 6 = 11`: a lone symbol naming the value is dropped."""
  if ans[0] != "value" or len(ans[1]) < 2 or any(op != "==" for op in ans[2]):
    return ans
  head, rest = ans[1][0], ans[1][1:]
  if isinstance(head, sympy.Symbol) and not any(head in r.free_symbols for r in rest):
    return ("value", rest, ans[2][1:])
  return ans


def _relation_equal(a: Answer, b: Answer) -> bool:
  (sa, oa), (sb, ob) = a[1:], b[1:]
  if len(sa) != 2 or len(sb) != 2:
    return len(sa) == len(sb) and oa == ob and all(map(scalars_equal, sa, sb))
  flip = {">": "<", ">=": "<="}
  da = sa[0] - sa[1] if oa[0] not in flip else sa[1] - sa[0]
  db = sb[0] - sb[1] if ob[0] not in flip else sb[1] - sb[0]
  if flip.get(oa[0], oa[0]) != flip.get(ob[0], ob[0]):
    return False
  c = _ratio_constant(da, db)
  if c is None:
    return False
  return True if oa[0] == "==" else bool(c.is_extended_real and c > 0)


def as_interval(ans: Answer) -> Answer:
  """`a < x <= b`, `x > a` or `x <= b` in one variable as an interval tuple; else `ans`."""
  if ans[0] != "value" or not ans[2] or "==" in ans[2]:
    return ans
  sides, ops = list(ans[1]), list(ans[2])
  if all(op in (">", ">=") for op in ops):  # Read right to left.
    sides, ops = sides[::-1], [{">": "<", ">=": "<="}[op] for op in ops[::-1]]
  if not all(op in ("<", "<=") for op in ops):
    return ans
  if len(sides) == 2:
    if isinstance(sides[0], sympy.Symbol):
      sides, ops = [-sympy.oo, *sides], ["<", *ops]
    elif isinstance(sides[1], sympy.Symbol):
      sides, ops = [*sides, sympy.oo], [*ops, "<"]
  if len(sides) != 3 or not isinstance(sides[1], sympy.Symbol):
    return ans
  lo, hi = ("value", [sides[0]], []), ("value", [sides[2]], [])
  return ("tuple", "(" if ops[0] == "<" else "[", ")" if ops[1] == "<" else "]", [lo, hi])


def as_sympy_set(ans: Answer) -> sympy.Set | None:
  """`ans` as a sympy set: finite sets of numbers, 2-element tuples and one-variable
  inequalities as intervals, unions and set operations of those; None otherwise."""
  ans = as_interval(ans)
  kind = ans[0]
  if kind == "set":
    members = [_number(a) for a in ans[1]]
    return None if any(m is None for m in members) else sympy.FiniteSet(*members)
  if kind == "tuple" and len(ans[3]) == 2:
    lo, hi = (_number(a, infinite=True) for a in ans[3])
    if lo is None or hi is None or not bool(lo <= hi):
      return None
    return sympy.Interval(lo, hi, left_open=ans[1] == "(", right_open=ans[2] == ")")
  if kind in ("union", "setop"):
    parts = [as_sympy_set(a) for a in ans[1]]
    if any(p is None for p in parts):
      return None
    if kind == "union":
      return sympy.Union(*parts)
    result = parts[0]
    for op, part in zip(ans[2], parts[1:]):
      combine = {"cup": sympy.Union, "cap": sympy.Intersection, "setminus": sympy.Complement}
      result = combine[op](result, part)
    return result
  return None


def _number(ans: Answer, *, infinite: bool = False) -> sympy.Expr | None:
  """The real number a one-sided value states (or +-oo when `infinite`), else None."""
  if ans[0] != "value" or len(ans[1]) != 1 or ans[2]:
    return None
  x = ans[1][0]
  if infinite and x in (sympy.oo, -sympy.oo):
    return x
  return x if _finite(x) and x.is_real else None


def _sets_equal(a: sympy.Set, b: sympy.Set) -> bool:
  try:
    return bool(
      sympy.Complement(a, b) is sympy.S.EmptySet and sympy.Complement(b, a) is sympy.S.EmptySet
    )
  except (TypeError, ValueError):
    return False


def _is_equation(ans: Answer) -> bool:
  return ans[0] == "value" and ans[2] == ["=="]


def equivalent(cand: Answer, ref: Answer) -> bool:
  """Whether the candidate answer states the same thing as the reference."""
  if _is_equation(cand) and _is_equation(ref) and _relation_equal(cand, ref):
    return True  # `2y = 3 - x` states the same line as `y = (3 - x)/2`.
  cand, ref = strip_label(cand), strip_label(ref)
  kinds = {cand[0], ref[0]}
  if kinds & {"union", "setop"}:
    a, b = as_sympy_set(cand), as_sympy_set(ref)
    if a is not None and b is not None:
      return _sets_equal(a, b)
  kind = cand[0]
  if kind == "value" and ref[0] == "value":
    if len(ref[1]) == 1:  # A value: every side of the candidate's chain must equal it.
      return all(op == "==" for op in cand[2]) and all(scalars_equal(s, ref[1][0]) for s in cand[1])
    return bool(cand[2]) and _relation_equal(cand, ref)
  if {kind, ref[0]} == {"value", "tuple"}:  # `1 \le x < 3` against `[1, 3)`
    cand, ref = as_interval(cand), as_interval(ref)
    kind = cand[0]
  if kind != ref[0]:
    return False
  if kind in ("text", "choice"):
    return cand[1] == ref[1]
  if kind == "tuple":
    return cand[1:3] == ref[1:3] and _all_equal(cand[3], ref[3])
  if kind == "matrix":
    return len(cand[1]) == len(ref[1]) and all(map(_all_equal, cand[1], ref[1]))
  return _unordered_equal(cand[1], ref[1])  # list, set, union


def _all_equal(xs: list[Answer], ys: list[Answer]) -> bool:
  return len(xs) == len(ys) and all(map(equivalent, xs, ys))


def _unordered_equal(xs: list[Answer], ys: list[Answer]) -> bool:
  remaining = list(ys)
  for x in xs:
    match = next((i for i, y in enumerate(remaining) if equivalent(x, y)), None)
    if match is None:
      if any(equivalent(x, y) for y in ys):
        continue  # a repeated member of a set
      return False
    remaining.pop(match)
  return not remaining


def canonical(ans: Answer) -> str:
  """A canonical string for `ans`, equal for answers that differ only in presentation."""
  ans = strip_label(ans)
  kind = ans[0]
  if kind == "value":
    parts = [_canon_scalar(ans[1][0])]
    parts += [f"{op} {_canon_scalar(side)}" for op, side in zip(ans[2], ans[1][1:])]
    return " ".join(parts)
  if kind in ("text", "choice"):
    return f"{kind}:{ans[1]}"
  if kind == "tuple":
    return ans[1] + ", ".join(canonical(a) for a in ans[3]) + ans[2]
  if kind == "matrix":
    return "matrix:" + ";".join(",".join(canonical(c) for c in row) for row in ans[1])
  if kind in ("union", "setop"):
    as_set = as_sympy_set(ans)
    if as_set is not None:  # Sympy's own normal form: equal sets, equal strings.
      return f"sympy-set:{sympy.sstr(as_set)}"
    if kind == "setop":
      return " ".join(
        [canonical(ans[1][0])] + [f"{op} {canonical(a)}" for op, a in zip(ans[2], ans[1][1:])]
      )
  return f"{kind}:{{" + ", ".join(sorted({canonical(a) for a in ans[1]})) + "}"


def _canon_scalar(x: sympy.Expr) -> str:
  try:
    return sympy.sstr(sympy.expand(x))
  except (ValueError, TypeError):  # e.g. integers beyond Python's str-conversion limit
    return sympy.sstr(x.evalf(30))
