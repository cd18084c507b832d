r"""Choosing one of N sampled solutions: by PRM, ORM, votes, or the oracle; best-of-N curves.

Every selector looks at the *same* N candidates of a problem and returns whether the one
it picks is correct:

| selector | picks |
|---|---|
| `prm_min`, `_product`, `_last` | the highest PRM solution score (`rm.solution_score`) |
| `prm_weighted_vote` | the answer a maximising sum_i 1[a_i = a] * min score_i (Math-Shepherd) |
| `orm` | the candidate with the highest ORM score |
| `majority` | the most frequent answer (self-consistency) |
| `oracle` | any correct candidate (pass@N) |

Ties go to the earliest candidate (or, for votes, the answer seen first), so results are
deterministic. A candidate with no answer (`answer` None) casts no vote.

`curve` gives each selector's accuracy at N = 1, 2, 4, ...: for each N it draws `trials`
random subsets of N candidates per problem (without replacement; PRM800K's protocol) and
averages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from jaxrl_verify.process import rm


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One sampled solution of a problem, scored.

  Attributes:
    answer: its final answer in a canonical form (equal answers compare equal), or None.
    correct: the verifier's verdict on it.
    step_probs: the PRM's probability at each step end (empty without a PRM).
    orm_score: the ORM's score (None without an ORM).
  """

  answer: str | None
  correct: bool
  step_probs: tuple[float, ...] = ()
  orm_score: float | None = None


def _argmax(scores: Sequence[float]) -> int:
  return int(np.argmax(np.asarray(scores, np.float64)))  # First of the ties.


def _by_prm(how: str) -> Callable[[Sequence[Candidate]], bool]:
  def select(cands: Sequence[Candidate]) -> bool:
    return cands[_argmax([rm.solution_score(c.step_probs, how) for c in cands])].correct

  return select


def _vote(cands: Sequence[Candidate], weight: Callable[[Candidate], float]) -> bool:
  totals: dict[str, float] = {}
  for c in cands:
    if c.answer is not None:
      totals[c.answer] = totals.get(c.answer, 0.0) + weight(c)
  if not totals:
    return False
  best = max(totals, key=lambda a: totals[a])  # dicts keep insertion order: first seen wins ties
  return next(c.correct for c in cands if c.answer == best)


def _orm(cands: Sequence[Candidate]) -> bool:
  return cands[_argmax([c.orm_score for c in cands])].correct


SELECTORS: dict[str, Callable[[Sequence[Candidate]], bool]] = {
  "prm_min": _by_prm("min"),
  "prm_product": _by_prm("product"),
  "prm_last": _by_prm("last"),
  "prm_weighted_vote": lambda cands: _vote(cands, lambda c: rm.solution_score(c.step_probs, "min")),
  "orm": _orm,
  "majority": lambda cands: _vote(cands, lambda c: 1.0),
  "oracle": lambda cands: any(c.correct for c in cands),
}


def curve(
  problems: Sequence[Sequence[Candidate]],
  selectors: Sequence[str],
  ns: Sequence[int],
  *,
  trials: int = 32,
  seed: int = 0,
) -> dict[str, dict[str, float]]:
  """{selector: {str(N): accuracy}}, each N averaged over `trials` random subsets per problem.

  Raises:
    ValueError: an unknown selector, or an N larger than some problem's candidate count.
  """
  unknown = sorted(set(selectors) - set(SELECTORS))
  if unknown:
    raise ValueError(f"Unknown selector(s) {unknown}; choose from {sorted(SELECTORS)}.")
  fewest = min(len(p) for p in problems)
  if max(ns) > fewest:
    raise ValueError(f"N={max(ns)} is more than the {fewest} candidates of some problem.")
  rng = np.random.default_rng(seed)
  out: dict[str, dict[str, float]] = {s: {} for s in selectors}
  for n in ns:
    hits = {s: 0.0 for s in selectors}
    reps = 1 if n == fewest == max(len(p) for p in problems) else trials
    for cands in problems:
      for _ in range(reps):
        subset = [cands[i] for i in sorted(rng.choice(len(cands), size=n, replace=False))]
        for s in selectors:
          hits[s] += SELECTORS[s](subset)
    for s in selectors:
      out[s][str(n)] = hits[s] / (reps * len(problems))
  return out
