"""A small, safe LaTeX-to-sympy parser for final answers (no `eval`, size-guarded).

Why not `latex2sympy2_extended` (what math-verify builds on): its ANTLR parser costs
1-100 ms per answer here, lower-cases symbols, turns `AZYUK2A` into a product and
evaluates `2^{10^{10}}`-style towers without a guard. Final answers use a small LaTeX
subset, so a recursive-descent parser over that subset builds sympy objects directly in
tens of microseconds, never calls `eval`, and raises `TooLarge` before sympy is asked to
build a number it cannot hold.

Grammar (loosely): `chain := expr (relop expr)*`, `expr := term (+|- term)*`,
`term := unary ((*|/|implicit) unary)*`, `unary := (+|-) unary | power`,
`power := postfix (^ unary)?`, `postfix := primary !*`, with `\\frac`, `\\sqrt[n]`,
`\\binom`, functions (`\\sin^2 x`, `\\log_2 8`), `|x|`, `\\pi`, `\\infty`, `e`, `i`.
"""

from __future__ import annotations

import math
import re

import sympy

MAX_RESULT_BITS = 200_000  # ~60k decimal digits: exact big-integer arithmetic stays fast.
MAX_FACTORIAL = 20_000


class ParseError(ValueError):
  """The text is not an expression in the supported subset."""


class TooLarge(ValueError):
  """Evaluating the expression would build an astronomically large number."""


_FUNCS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "sec": sympy.sec,
    "csc": sympy.csc, "cot": sympy.cot, "arcsin": sympy.asin, "arccos": sympy.acos,
    "arctan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "exp": sympy.exp, "ln": sympy.log, "log": sympy.log,
}  # fmt: skip
_INVERSE = {"sin": "arcsin", "cos": "arccos", "tan": "arctan"}
_CONSTS = {"pi": sympy.pi, "infty": sympy.oo, "inf": sympy.oo}
# Names recognised in plain text (no backslash), longest first so `sinh` beats `sin`.
_WORDS = sorted([*_FUNCS, "sqrt", "pi", "infty", "frac"], key=len, reverse=True)
_TOKEN_RE = re.compile(
  r"\s*(?:(?P<num>\d+\.?\d*|\.\d+)|(?P<cmd>\\[a-zA-Z]+|\\[{}|])|"
  r"(?P<word>" + "|".join(_WORDS) + r")(?![a-zA-Z])|(?P<letter>[a-zA-Z])|"
  r"(?P<op><=|>=|!=|[-+*/^_!()\[\]{}|=<>]))"
)
_SIZE_CMDS = {r"\big", r"\Big", r"\bigg", r"\Bigg", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr"}
_RELOPS = {"=": "==", "<": "<", ">": ">", "<=": "<=", ">=": ">=", r"\le": "<=", r"\leq": "<=",
           r"\ge": ">=", r"\geq": ">=", r"\lt": "<", r"\gt": ">"}  # fmt: skip


def tokenize(text: str) -> list[str]:
  """Splits `text` into tokens; raises ParseError on any character outside the subset."""
  tokens, pos = [], 0
  text = text.strip()
  while pos < len(text):
    m = _TOKEN_RE.match(text, pos)
    if not m or m.end() == pos:
      raise ParseError(f"unexpected character {text[pos]!r}")
    tok = m.group(m.lastgroup)
    if m.lastgroup == "word":
      tok = "\\" + tok
    if tok not in _SIZE_CMDS:
      tokens.append(tok)
    pos = m.end()
  return tokens


def guarded_pow(base: sympy.Expr, exp: sympy.Expr) -> sympy.Expr:
  """`base**exp`, raising TooLarge when exact evaluation would exceed MAX_RESULT_BITS."""
  if base.is_Rational and exp.is_Rational and abs(exp) > 64:
    size = max(abs(base.p), abs(base.q))
    if size > 1 and abs(exp) * math.log2(size) > MAX_RESULT_BITS:
      raise TooLarge("power too large to evaluate")
  return sympy.Pow(base, exp)


def _factorial(arg: sympy.Expr) -> sympy.Expr:
  if arg.is_Integer and arg > MAX_FACTORIAL:
    raise TooLarge("factorial too large to evaluate")
  return sympy.factorial(arg)


class _Parser:
  """Recursive-descent parser over the token list; see the module docstring."""

  def __init__(self, tokens: list[str]):
    self.toks = tokens
    self.i = 0

  def peek(self) -> str | None:
    return self.toks[self.i] if self.i < len(self.toks) else None

  def take(self, expected: str | None = None) -> str:
    tok = self.peek()
    if tok is None or (expected is not None and tok != expected):
      raise ParseError(f"expected {expected or 'more input'}, got {tok!r}")
    self.i += 1
    return tok

  def done(self) -> bool:
    return self.i >= len(self.toks)

  # --- relations and arithmetic ---

  def chain(self) -> tuple[list[sympy.Expr], list[str]]:
    sides, ops = [self.expr()], []
    while self.peek() in _RELOPS:
      ops.append(_RELOPS[self.take()])
      sides.append(self.expr())
    return sides, ops

  def expr(self) -> sympy.Expr:
    out = self.term()
    while self.peek() in ("+", "-"):
      sign = self.take()
      rhs = self.term()
      out = out + rhs if sign == "+" else out - rhs
    return out

  def _starts_primary(self, tok: str | None) -> bool:
    if tok is None:
      return False
    if tok in ("(", "[", "{", r"\{"):
      return True
    if tok[0].isdigit() or tok[0] == "." or tok.isalpha():
      return True
    return tok.startswith("\\") and tok not in _RELOPS and tok not in (r"\}", r"\cdot", r"\times")

  def _after_number(self) -> bool:
    prev = self.toks[self.i - 1] if self.i > 0 else ""
    return bool(prev) and (prev[0].isdigit() or prev[0] == ".")

  def term(self) -> sympy.Expr:
    out = self.unary()
    while True:
      tok = self.peek()
      if tok in ("*", r"\cdot", r"\times"):
        self.take()
        out = out * self.unary()
      elif tok in ("/", r"\div"):
        self.take()
        den = self.unary()
        if den == 0:
          raise ParseError("division by zero")
        out = out / den
      elif tok is not None and (tok[0].isdigit() or tok[0] == ".") and self._after_number():
        raise ParseError("two numbers side by side")
      elif tok == r"\frac" and self._after_number() and out.is_Integer:
        part = self.power()  # `2\frac{1}{2}` is the mixed number 5/2, not a product.
        mixed = part.is_Rational and 0 < part < 1
        out = (out + part if out >= 0 else out - part) if mixed else out * part
      elif self._starts_primary(tok):
        out = out * self.power()
      else:
        return out

  def unary(self) -> sympy.Expr:
    if self.peek() == "-":
      self.take()
      return -self.unary()
    if self.peek() == "+":
      self.take()
      return self.unary()
    return self.power()

  def power(self) -> sympy.Expr:
    base = self.postfix()
    if self.peek() == "^":
      self.take()
      return guarded_pow(base, self._exponent())
    return base

  def _exponent(self) -> sympy.Expr:
    if self.peek() == "{":
      return self.group()
    if self.peek() == "-":
      self.take()
      return -self._exponent()
    return self.single()

  def postfix(self) -> sympy.Expr:
    out = self.primary()
    while self.peek() == "!":
      self.take()
      out = _factorial(out)
    return out

  # --- atoms ---

  def group(self) -> sympy.Expr:
    self.take("{")
    out = self.expr()
    self.take("}")
    return out

  def single(self) -> sympy.Expr:
    """A LaTeX macro argument: `{...}`, one digit (as in `\\frac12`) or one atom."""
    tok = self.peek()
    if tok == "{":
      return self.group()
    if tok is not None and tok[0].isdigit() and len(tok) > 1:
      self.toks[self.i] = tok[1:]
      return sympy.Integer(int(tok[0]))
    return self.primary()

  def primary(self) -> sympy.Expr:
    tok = self.take()
    if tok[0].isdigit() or tok[0] == ".":
      return sympy.Rational(tok.rstrip(".") if tok.endswith(".") else tok)
    if tok.isalpha():
      return self._symbol(tok)
    if tok in ("(", "[", "{"):
      close = {"(": ")", "[": "]", "{": "}"}[tok]
      out = self.expr()
      self.take(close)
      return out
    if tok == "|":
      out = self.expr()
      self.take("|")
      return sympy.Abs(out)
    return self._command(tok)

  def _symbol(self, name: str) -> sympy.Expr:
    if self.peek() == "_":
      self.take()
      sub = self.take()
      if sub == "{":
        parts = []
        while self.peek() not in ("}", None):
          parts.append(self.take())
        self.take("}")
        sub = "".join(parts)
      name = f"{name}_{sub}"
    if name == "e":
      return sympy.E
    if name == "i":
      return sympy.I
    return sympy.Symbol(name)

  def _command(self, cmd: str) -> sympy.Expr:
    name = cmd[1:]
    if name == "frac":
      num = self.single()
      den = self.single()
      if den == 0:
        raise ParseError("division by zero")
      return num / den
    if name == "sqrt":
      index = sympy.Integer(2)
      if self.peek() == "[":
        self.take()
        index = self.expr()
        self.take("]")
      return guarded_pow(self.single(), 1 / index)
    if name == "binom":
      n, k = self.single(), self.single()
      if n.is_Integer and n > MAX_FACTORIAL:
        raise TooLarge("binomial too large to evaluate")
      return sympy.binomial(n, k)
    if name in _CONSTS:
      return _CONSTS[name]
    if name in _FUNCS:
      return self._function(name)
    raise ParseError(f"unsupported command {cmd}")

  def _function(self, name: str) -> sympy.Expr:
    base = None
    if name == "log" and self.peek() == "_":
      self.take()
      base = self.single()
    power = None
    if self.peek() == "^":
      self.take()
      power = self._exponent()
    if self.peek() in ("(", "{"):
      arg = self.primary()
    else:  # `\sin 2x`: the argument is the implicit product of the following atoms.
      arg = self.power()
      while self.peek() is not None and (self.peek()[0].isalnum() or self.peek() == "."):
        arg = arg * self.power()
    if power == -1 and name in _INVERSE:  # `\\sin^{-1} x` is arcsin, not 1/sin.
      return _FUNCS[_INVERSE[name]](arg)
    out = sympy.log(arg, base) if base is not None else _FUNCS[name](arg)
    if power is not None:
      out = guarded_pow(out, power)
    return out


def parse_chain(text: str) -> tuple[list[sympy.Expr], list[str]]:
  """Parses `a = b < c ...` into its sides and relation operators ('==', '<', '<=', ...).

  Raises:
    ParseError: the text is outside the supported subset.
    TooLarge: evaluating it would build a number beyond MAX_RESULT_BITS.
  """
  parser = _Parser(tokenize(text))
  if parser.done():
    raise ParseError("empty expression")
  try:
    sides, ops = parser.chain()
  except (TypeError, AttributeError, ZeroDivisionError) as e:
    raise ParseError(f"malformed expression: {e}") from e
  if not parser.done():
    raise ParseError(f"unexpected {parser.peek()!r}")
  return sides, ops


def parse_expr(text: str) -> sympy.Expr:
  """Parses a single expression (no relation operators)."""
  sides, ops = parse_chain(text)
  if ops:
    raise ParseError("expected an expression, found a relation")
  return sides[0]
