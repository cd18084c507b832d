"""Pure helpers of the `code` verifier: program extraction, assert splitting, output comparison.

An MBPP-style `assert CALL == EXPECTED` is split into the call, which is evaluated inside the
candidate's sandbox, and the expected value, which is parsed here with `ast.literal_eval` (or, when
it is an expression, evaluated in a sandbox that holds no candidate code) and never enters the
candidate's process. The comparison happens in the parent on plain data.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from typing import Any

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_CODE_LANGS = ("", "python", "py", "python3", "py3")


def extract_program(completion: str) -> str | None:
  """The program in a completion: the last fenced Python block, else the raw text if it parses."""
  blocks = [body for lang, body in _FENCE.findall(completion) if lang.lower() in _CODE_LANGS]
  if blocks:
    return blocks[-1]
  text = completion.strip()
  if not text:
    return None
  try:
    ast.parse(text)
  except (SyntaxError, ValueError, RecursionError, MemoryError):
    return None
  return text


@dataclasses.dataclass(frozen=True)
class SplitAssert:
  """One assert split into what runs in the sandbox and what stays in the parent.

  Attributes:
    call: expression evaluated in the candidate's namespace (inside the sandbox).
    op: `eq`, `ne`, `truthy`, `falsy`, `is`, `isclose` or `abs_lt` / `abs_le`.
    expected: the parsed expected value (when `expected_expr` is None).
    expected_expr: an expected value that is not a literal, evaluated without the candidate.
    options: `math.isclose` keyword arguments, or `{"tol": x}` for the `abs(a - b) < tol` form.
  """

  call: str
  op: str
  expected: Any = None
  expected_expr: str | None = None
  options: dict[str, Any] = dataclasses.field(default_factory=dict)


def _literal(node: ast.AST) -> tuple[bool, Any]:
  try:
    return True, ast.literal_eval(node)
  except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
    return False, None


def _side(node: ast.AST) -> tuple[Any, str | None]:
  ok, value = _literal(node)
  return (value, None) if ok else (None, ast.unparse(node))


def split_assert(test: str) -> SplitAssert:
  """Splits `assert ...` into call and expected value; ValueError for shapes it cannot split."""
  try:
    body = ast.parse(test.strip()).body
  except SyntaxError as e:
    raise ValueError(f"test {test!r} is not valid Python ({e.msg}).") from None
  if len(body) != 1 or not isinstance(body[0], ast.Assert):
    raise ValueError(f"test {test!r} is not a single assert statement.")
  expr = body[0].test
  if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
    return SplitAssert(ast.unparse(expr.operand), "falsy")
  if isinstance(expr, ast.Compare) and len(expr.ops) == 1:
    left, right, op = expr.left, expr.comparators[0], expr.ops[0]
    if isinstance(op, (ast.Eq, ast.NotEq, ast.Is)):
      if _literal(left)[0] and not _literal(right)[0]:
        left, right = right, left
      value, expected_expr = _side(right)
      name = {ast.Eq: "eq", ast.NotEq: "ne", ast.Is: "is"}[type(op)]
      return SplitAssert(ast.unparse(left), name, value, expected_expr)
    absdiff = _abs_difference(left)
    ok, tol = _literal(right)
    if absdiff and ok and isinstance(op, (ast.Lt, ast.LtE)):
      value, expected_expr = _side(absdiff[1])
      name = "abs_lt" if isinstance(op, ast.Lt) else "abs_le"
      return SplitAssert(ast.unparse(absdiff[0]), name, value, expected_expr, {"tol": tol})
  if (
    isinstance(expr, ast.Call)
    and ast.unparse(expr.func) in ("math.isclose", "isclose")
    and len(expr.args) == 2
    and all(_literal(k.value)[0] for k in expr.keywords)
  ):
    a, b = expr.args
    if _literal(a)[0] and not _literal(b)[0]:
      a, b = b, a
    value, expected_expr = _side(b)
    options = {k.arg: ast.literal_eval(k.value) for k in expr.keywords}
    return SplitAssert(ast.unparse(a), "isclose", value, expected_expr, options)
  if isinstance(expr, (ast.Compare, ast.BoolOp)):
    raise ValueError(
      f"test {test!r} cannot be split into a call and an expected value; write it as "
      "`assert CALL == EXPECTED` (or use a HumanEval-style check function)."
    )
  return SplitAssert(ast.unparse(expr), "truthy")


def _abs_difference(node: ast.AST) -> tuple[ast.AST, ast.AST] | None:
  if (
    isinstance(node, ast.Call)
    and ast.unparse(node.func) == "abs"
    and len(node.args) == 1
    and isinstance(node.args[0], ast.BinOp)
    and isinstance(node.args[0].op, ast.Sub)
  ):
    a, b = node.args[0].left, node.args[0].right
    return (b, a) if _literal(a)[0] and not _literal(b)[0] else (a, b)
  return None


def compare(split: SplitAssert, value: Any, expected: Any) -> bool:
  """Whether plain `value` satisfies the assert against plain `expected` (parent side)."""
  try:
    if split.op == "eq":
      return bool(value == expected)
    if split.op == "ne":
      return bool(value != expected)
    if split.op == "is":
      return value is expected or (expected is None and value is None)
    if split.op == "truthy":
      return bool(value)
    if split.op == "falsy":
      return not value
    if split.op == "isclose":
      return math.isclose(value, expected, **split.options)
    diff = abs(value - expected)
    return bool(
      diff < split.options["tol"] if split.op == "abs_lt" else diff <= split.options["tol"]
    )
  except (TypeError, ValueError, OverflowError, RecursionError):
    return False


def normalise_output(text: str) -> list[str]:
  """Lines with trailing whitespace stripped and trailing empty lines dropped."""
  lines = [line.rstrip() for line in text.splitlines()]
  while lines and not lines[-1]:
    lines.pop()
  return lines


_MARKERS = re.compile(
  r"(?i)(all\s+tests?\s+pass|tests?\s+passed|\bpassed\b|\bverdict\b|\"(status|reward|passed)\"\s*:"
  r"|\bPASS\b|^\s*OK\s*$|\bsuccess\b)",
  re.MULTILINE,
)


def forged_marker(output: str) -> str | None:
  """A fake success marker printed by a program whose output is not its answer."""
  m = _MARKERS.search(output)
  return m.group(0).strip() if m else None
