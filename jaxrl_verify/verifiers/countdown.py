"""The `countdown` verifier: does the boxed expression reach the target by the rules?

Rules (the prompt of the `countdown` task states them):
  1. The answer is the expression inside the last `\\boxed{...}`; a completion with
     no box, or with several boxes holding different expressions (hedging), is
     `invalid`. `\\boxed{EXPR = N}` is accepted when N is the value of EXPR.
  2. EXPR uses only integer literals, `+ - * /` and parentheses (LaTeX `\\times`,
     `\\cdot`, `\\div` and the symbols `×` `÷` `−` are read as operators). It is
     parsed with `ast` and walked node by node; nothing is ever evaluated as code.
     Anything else (names, calls, powers, unary minus, decimals) is `invalid`.
  3. Each given number is used **at most once** (as in the TV game, not every number
     must be used); a number used more often than given, or one that was not given,
     makes the answer `wrong`.
  4. The value, computed exactly with `fractions.Fraction`, must equal the target;
     division by zero makes the answer `wrong`.

Fields: `numbers` (the given integers); reference: the target (int or digit string).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from jaxrl_verify.verifiers.base import Verdict, register

MAX_EXPRESSION_CHARS = 200
_ALLOWED = re.compile(r"[0-9+\-*/() ]*")
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_LATEX = (
  (r"\times", "*"),
  (r"\cdot", "*"),
  (r"\div", "/"),
  ("×", "*"),
  ("÷", "/"),
  ("−", "-"),
  (r"\left", ""),
  (r"\right", ""),
  ("$", ""),
)


class _Reject(Exception):
  """An answer that breaks a rule; `status` says which kind."""

  def __init__(self, status: str, reason: str):
    super().__init__(reason)
    self.status, self.reason = status, reason


@register("countdown")
def verify(completion: str, reference: Any, numbers: Sequence[int] = (), **_: Any) -> Verdict:
  """`ok` (reward 1) when the boxed expression obeys the rules and equals the target."""
  target, given = _check_inputs(reference, numbers)
  try:
    expression = _extract(completion)
    value, used = _evaluate(expression)
    counts, allowed = Counter(used), Counter(given)
    foreign = sorted(n for n in counts if n not in allowed)
    if foreign:
      raise _Reject("wrong", f"uses {foreign}, which are not among the given numbers {given}")
    reused = sorted(n for n in counts if counts[n] > allowed[n])
    if reused:
      raise _Reject("wrong", f"uses {reused} more often than given (each at most once)")
    if value is None:
      raise _Reject("wrong", f"{expression} divides by zero")
    if value != target:
      raise _Reject("wrong", f"{expression} = {value}, not the target {target}")
  except _Reject as r:
    return Verdict(status=r.status, reward=0.0, reason=r.reason)  # type: ignore[arg-type]
  return Verdict(status="ok", reward=1.0, reason=f"{expression} = {target}")


def _check_inputs(reference: Any, numbers: Sequence[int]) -> tuple[int, list[int]]:
  try:
    target = int(str(reference).strip())
    given = [int(n) for n in numbers]
  except (TypeError, ValueError):
    raise ValueError(
      f"The countdown verifier needs an integer target and a list of integers `numbers`; "
      f"got reference={reference!r}, numbers={numbers!r}."
    ) from None
  if not given:
    raise ValueError("The countdown verifier got no `numbers`; pass the task's numbers field.")
  return target, given


def _boxed_contents(text: str) -> list[str]:
  out, start = [], 0
  while (start := text.find("\\boxed{", start)) >= 0:
    i, depth = start + len("\\boxed{"), 1
    while i < len(text) and depth:
      depth += {"{": 1, "}": -1}.get(text[i], 0)
      i += 1
    if depth:
      break  # An unclosed box is not an answer.
    out.append(text[start + len("\\boxed{") : i - 1].strip())
    start = i
  return out


def _extract(completion: str) -> str:
  boxes = _boxed_contents(completion)
  if not boxes:
    raise _Reject("invalid", "no \\boxed{...} expression")
  if len({_normalise(b) for b in boxes}) > 1:
    raise _Reject("invalid", f"{len(boxes)} different boxed answers (hedged)")
  expression = _normalise(boxes[-1])
  if not expression:
    raise _Reject("invalid", "the box is empty")
  if len(expression) > MAX_EXPRESSION_CHARS:
    raise _Reject("invalid", f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
  return expression


def _normalise(text: str) -> str:
  for old, new in _LATEX:
    text = text.replace(old, new)
  return re.sub(r"\s+", " ", text.replace("{", "(").replace("}", ")")).strip()


def _evaluate(expression: str) -> tuple[Fraction | None, list[int]]:
  """Exact value of `EXPR` or `EXPR = N`, and the integer literals it uses."""
  lhs, eq, rhs = expression.partition("=")
  if "=" in rhs:
    raise _Reject("invalid", "more than one '=' in the answer")
  value, used = _parse(lhs)
  if eq:
    stated, _ = _parse(rhs)
    if value is not None and stated != value:
      raise _Reject("wrong", f"{lhs.strip()} = {value}, not the stated {rhs.strip()}")
  return value, used


def _parse(text: str) -> tuple[Fraction | None, list[int]]:
  # The character whitelist also rules out literals Python reads as integers but a
  # person would not write (0x1f, 0b11, 1_0) and decimals.
  if not _ALLOWED.fullmatch(text):
    bad = sorted(set(_ALLOWED.sub("", text)))
    raise _Reject("invalid", f"only integers, + - * / and parentheses are allowed, not {bad}")
  try:
    tree = ast.parse(text.strip(), mode="eval")
  except (SyntaxError, ValueError):
    raise _Reject("invalid", f"cannot parse {text.strip()!r} as an arithmetic expression") from None
  used: list[int] = []
  return _walk(tree.body, used), used


def _walk(node: ast.AST, used: list[int]) -> Fraction | None:
  """Exact value of an expression node (None after a division by zero)."""
  if isinstance(node, ast.Constant) and type(node.value) is int:
    used.append(node.value)
    return Fraction(node.value)
  if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
    # Both sides are walked first so every literal is collected for the usage rules.
    left, right = _walk(node.left, used), _walk(node.right, used)
    if left is None or right is None:
      return None
    if isinstance(node.op, ast.Add):
      return left + right
    if isinstance(node.op, ast.Sub):
      return left - right
    if isinstance(node.op, ast.Mult):
      return left * right
    return None if right == 0 else left / right
  what = (
    type(node.op).__name__ if isinstance(node, ast.BinOp | ast.UnaryOp) else type(node).__name__
  )
  raise _Reject("invalid", f"only integers, + - * / and parentheses are allowed, not {what}")
