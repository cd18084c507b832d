"""Final-answer extraction and string normalisation for the `math` verifier.

Pure string functions: `extract_final_answer` finds the candidate final answers in a
completion (every `\\boxed{}`/`\\fbox{}`, else GSM8K `####`, else "final answer is" /
"the answer is" / "Answer:"), and `normalize_answer` removes presentation that does not
change the value (LaTeX spacing, `\\left`/`\\right`, `\\text`, `\\dfrac`, units, currency,
percent, degrees, thousands separators).
"""

from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_HASH_RE = re.compile(r"####\s*([^\n]+)")
_PHRASE_RE = re.compile(
  r"(?:final answer|the answer)\**\s*(?:is|:)\s*:?\s*([^\n]+)"
  r"|(?:^|\n)\s*\**answer\**\s*:\s*([^\n]+)",
  re.IGNORECASE,
)
_DOLLAR_MATH_RE = re.compile(r"\$+([^$]+)\$+")


def _braced(text: str, start: int) -> tuple[str, int] | None:
  """The content of the `{...}` group opening at `text[start]`, honouring `\\{` escapes."""
  depth, i = 0, start
  while i < len(text):
    ch = text[i]
    if ch == "\\":
      i += 2
      continue
    if ch == "{":
      depth += 1
    elif ch == "}":
      depth -= 1
      if depth == 0:
        return text[start + 1 : i], i + 1
    i += 1
  return None


def extract_boxed(text: str) -> list[str]:
  """Contents of every `\\boxed{...}` / `\\fbox{...}` (nested braces kept), in order."""
  out = []
  for m in _BOX_RE.finditer(text):
    pos = m.end()
    if pos < len(text) and text[pos] == "{":
      got = _braced(text, pos)
      out.append(got[0] if got else "")
    else:  # `\boxed 5`: one token.
      token = re.match(r"[^\s$.,]*", text[pos:]).group(0)
      out.append(token)
  return out


def _clean_phrase(answer: str) -> str:
  math = _DOLLAR_MATH_RE.search(answer)
  if math:
    return math.group(1)
  answer = answer.strip()
  # A sentence ends at `. ` or a final `.` that is not a decimal point.
  answer = re.split(r"\.\s", answer, maxsplit=1)[0]
  return re.sub(r"\.$", "", answer.strip()).strip()


def extract_final_answer(text: str) -> list[str]:
  """Candidate final answers in `text`, raw, in order of appearance (may repeat).

  Precedence: all boxed answers; else the last GSM8K `#### X`; else the last "final
  answer is X" / "the answer is X" / "Answer: X". No fallback to "the last number":
  a completion without a marked answer has none. Returns [] when nothing is marked.
  """
  boxed = extract_boxed(text)
  if boxed:
    return boxed
  hashes = _HASH_RE.findall(text)
  if hashes:
    return [hashes[-1].strip()]
  phrases = _PHRASE_RE.findall(text)
  if phrases:
    return [_clean_phrase(next(p for p in phrases[-1] if p))]
  return []


# --- normalisation ---

_TEXT_CMD_RE = re.compile(
  r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|textnormal|operatorname)\s*{"
)
_UNITS = (
  "cm|m|km|mm|kg|g|mg|s|sec|seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|years?|"
  "meters?|metres?|inches|inch|feet|foot|ft|miles?|units?|sq|square|cubic|dollars?|cents?|"
  "degrees?|percent|pounds?|lbs?|ounces?|oz|liters?|litres?|ml|l|mph|km/h|students?|people|"
  "apples?|points?|cookies?|marbles?|books?|pages?|times"
)
_TRAILING_UNIT_RE = re.compile(rf"^(.*?[\d}}.)])\s*(?:(?:{_UNITS})\b\.?\s*)+$")
_THOUSANDS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])")
_SPACING = (r"\displaystyle", r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", r"\quad", r"\qquad")


# `1.5e3`, `2E-4`, `6.02e+23`: a mantissa, e or E, a signed integer exponent. (A letter e
# between digits is never Euler's number times a digit in a final answer.)
_SCIENTIFIC_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)[eE]\+?(-?\d+)(?![\d.])")
_REPEATING_RE = re.compile(r"(\d*)\.(\d*)\\overline\s*{(\d+)}")


def _repeating_to_fraction(m: re.Match) -> str:
  """`0.1\\overline{6}` -> `\\frac{15}{90}` (the exact value of a repeating decimal)."""
  whole, fixed, period = m.group(1) or "0", m.group(2), m.group(3)
  num = int(whole + fixed + period) - int(whole + fixed)
  den = 10 ** len(fixed) * (10 ** len(period) - 1)
  return rf"\frac{{{num}}}{{{den}}}"


def _unwrap_text(s: str) -> str:
  while True:
    m = _TEXT_CMD_RE.search(s)
    if not m:
      return s
    got = _braced(s, m.end() - 1)
    if got is None:
      return s[: m.start()] + s[m.end() :]
    s = s[: m.start()] + " " + got[0] + " " + s[got[1] :]


def normalize_answer(answer: str) -> str:
  """Removes presentation that does not change an answer's value; returns the result."""
  s = answer.strip()
  s = s.replace("\\\\", "\x00")  # Protect matrix row separators from the spacing rules.
  for token in _SPACING:
    s = re.sub(re.escape(token) + r"(?![a-zA-Z])", "", s)
  s = s.replace("\\ ", " ").replace("\x00", "\\\\").replace("~", " ")
  s = re.sub(r"\\(?:[dt]frac|cfrac(?:\[[lrc]\])?)", r"\\frac", s)  # \cfrac[l]: continued.
  s = re.sub(r"\\[dt]binom", r"\\binom", s)
  s = _unwrap_text(s)
  s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
  s = re.sub(r"\^\s*{\s*\\circ\s*}|\^\s*\\circ|\\circ|°|\\degree", "", s)
  s = s.replace("{,}", ",").replace("−", "-").replace("π", "\\pi").replace("∞", "\\infty")
  s = s.replace("≤", "\\le ").replace("≥", "\\ge ").replace("×", "\\times ").replace("·", "\\cdot ")
  s = re.sub(r"\s+", " ", s).strip()
  s = re.sub(r"^[a-zA-Z]\s*\\in\s*|^[a-zA-Z]\s*\(\s*[a-zA-Z]\s*\)\s*=(?!.*=)", "", s)
  s = re.sub(r"\\(?:emptyset|varnothing)(?![a-zA-Z])", r"\\{\\}", s).replace("**", "^")
  s = _REPEATING_RE.sub(_repeating_to_fraction, s)
  s = _SCIENTIFIC_RE.sub(r"\1\\times 10^{\2}", s)
  m = _TRAILING_UNIT_RE.match(s) if len(s) < 200 else None  # (the regex backtracks)
  if m:
    s = m.group(1).strip()
  s = _THOUSANDS_RE.sub(lambda m: m.group(0).replace(",", ""), s)
  return s.strip().rstrip(".").strip()
