"""The `math` verifier: one final answer, judged for mathematical equivalence.

`verify_math(completion, reference)` extracts the completion's final answers
(`math_extract`), parses them into answer structures (`math_equiv`, over the safe parser
in `math_parse`) and compares them with the reference:

  * `invalid`: no marked final answer, an empty or non-answer box, or two or more
    *distinct* answers (hedging: several boxes, `3 or 4`, `\\pm 2`, `3, 4, 5, 6`), or
    a number too large to evaluate (`2^{10^{10}}`), refused up front: it never hangs
    the check, and it is penalised rather than masked like a real `timeout`.
  * `wrong` / `ok`: a single answer, compared by value. A chain `x = 5 + 6 = 11` is
    judged on every side, so `= 7 = 11` is wrong even though it ends on 11.
  * `timeout` / `error`: only from the pool (deadline, crash), never from the answer.

Coverage is measured by differential testing: `tests/math_corpus.py` generates 6,386
(answer, reference) pairs of known truth (fractions in every macro, continued fractions,
scientific and engineering notation, percentages, thousands separators, surds, set
operations and set-builder forms, intervals, tuples, matrices, equations, inequalities,
and near misses of each); this verifier gets all of them right, math-verify 0.9 rejects
860 equal pairs (`tests/data/math_differential.jsonl`, triaged). One rendering is
ambiguous by nature and judged one way on purpose: a percentage is its number (`50\\%`
equals `50`, as MATH-style references write it), so `50\\%` against `0.5` is wrong.

Pure helpers for other code (e.g. maj@k voting): `extract_final_answer`,
`is_equivalent(a, b)` and `canonical_answer(text)`.
"""

from __future__ import annotations

import time

from jaxrl_verify.verifiers import math_equiv, math_parse
from jaxrl_verify.verifiers.base import Verdict, register
from jaxrl_verify.verifiers.math_extract import extract_final_answer, normalize_answer

__all__ = ["canonical_answer", "extract_final_answer", "is_equivalent", "verify_math"]


class _NoAnswer(ValueError):
  """The text states no single, well-formed final answer."""


MAX_ANSWER_CHARS = 2000


def _parse(raw: str) -> math_equiv.Answer:
  if len(raw) > MAX_ANSWER_CHARS:
    raise _NoAnswer(f"final answer longer than {MAX_ANSWER_CHARS} characters")
  try:
    return math_equiv.parse_answer(normalize_answer(raw))
  except RecursionError as e:
    raise _NoAnswer("final answer nested too deeply to parse") from e


def _single_answer(completion: str) -> math_equiv.Answer:
  """The completion's one distinct final answer; raises _NoAnswer otherwise."""
  raws = extract_final_answer(completion)
  if not raws:
    raise _NoAnswer("no final answer found (expected \\boxed{}, '####' or 'the answer is')")
  distinct: list[math_equiv.Answer] = []
  for raw in raws:
    ans = _parse(raw)
    if math_equiv.is_non_answer(ans):
      raise _NoAnswer(f"empty or non-answer box {raw[:40]!r}")
    if not any(math_equiv.equivalent(ans, d) for d in distinct):
      distinct.append(ans)
  if len(distinct) > 1:
    raise _NoAnswer(f"{len(distinct)} distinct final answers (hedging)")
  (ans,) = distinct
  n = math_equiv.count_answers(ans)
  if n > 1:
    raise _NoAnswer(f"{n} distinct answers in one box (hedging or enumeration)")
  return ans[1][0] if ans[0] == "list" else ans


def _reference_answer(reference: str) -> math_equiv.Answer:
  raws = extract_final_answer(reference) if "\\boxed" in reference else [reference]
  return _parse(raws[-1] if raws else reference)


def is_equivalent(a: str, b: str) -> bool:
  """Whether answer strings `a` and `b` (LaTeX or plain) state the same answer."""
  try:
    return math_equiv.equivalent(_parse(a), _parse(b))
  except (_NoAnswer, math_parse.TooLarge, RecursionError):
    return False


def canonical_answer(text: str) -> str | None:
  """A canonical string for the completion's final answer, usable as a maj@k vote key.

  Returns None when the text has no single well-formed answer (or it is too large).
  """
  try:
    return math_equiv.canonical(_single_answer(text))
  except (_NoAnswer, math_parse.TooLarge, RecursionError):
    return None


@register("math")
def verify_math(completion: str, reference: str, **fields) -> Verdict:
  """Judges `completion` against the reference answer; extra task fields are ignored.

  Args:
    completion: model output, with a final answer in `\\boxed{}`, after `####`, or after
      "the (final) answer is" / "Answer:".
    reference: the reference answer (LaTeX or plain; a `\\boxed{}` in it is extracted).
    **fields: unused task fields (accepted so the pool can pass a task's row through).

  Returns:
    A Verdict with reward 1.0 for `ok` and 0.0 otherwise.
  """
  del fields
  start = time.perf_counter()

  def verdict(status, reason):
    reward = 1.0 if status == "ok" else 0.0
    return Verdict(status, reward, latency_s=time.perf_counter() - start, reason=reason)

  if not isinstance(completion, str) or not isinstance(reference, str):
    return verdict("invalid", "completion and reference must be strings")
  try:
    ref = _reference_answer(reference)
    if math_equiv.count_answers(ref) == 1:
      cand = _single_answer(completion)
    else:  # The reference itself lists several answers: compare the lists.
      raws = extract_final_answer(completion)
      if len(set(raws)) != 1:
        raise _NoAnswer(f"expected one final answer listing {len(ref[1])} values")
      cand = _parse(raws[0])
    if math_equiv.equivalent(cand, ref):
      return verdict("ok", "equivalent to the reference")
    return verdict("wrong", "not equivalent to the reference")
  except _NoAnswer as e:
    return verdict("invalid", str(e))
  except math_parse.TooLarge as e:
    # Refused up front instead of running into the deadline. The answer itself is at
    # fault, so it is `invalid` (penalised), not `timeout` (masked out of the loss):
    # otherwise a policy could escape every penalty by answering with 9^(9^(9^9)).
    return verdict("invalid", f"{e}: too large to evaluate (refused, never run to a timeout)")
  except RecursionError:
    return verdict("invalid", "final answer nested too deeply to compare")
  except Exception as e:  # noqa: BLE001 - a failed check is a verdict, never a raise.
    return verdict("error", f"{type(e).__name__}: {e}"[:200])
