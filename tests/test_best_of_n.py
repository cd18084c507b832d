"""Best-of-N selectors on hand-computed cases, and the best-of-N curve."""

import pytest

from jaxrl_verify.process import best_of_n as bon

C = bon.Candidate
# A problem whose right answer is "5". Hand-computed picks per selector below.
CANDS = [
  C("4", False, (0.9, 0.9, 0.3), 0.2),  # min .3, product .243, last .3
  C("5", True, (0.6, 0.7, 0.8), 0.7),  # min .6, product .336, last .8
  C("4", False, (0.95, 0.5, 0.9), 0.9),  # min .5, product .4275, last .9
  C("4", False, (0.2, 0.2, 0.2), 0.1),  # min .2, product .008, last .2
  C(None, False, (0.99, 0.99, 0.99), 0.0),  # no answer: no vote; min .99
  C("5", True, (0.7, 0.7, 0.7), 0.3),  # min .7, product .343, last .7
]


def test_selectors_pick_as_computed_by_hand():
  picks = {name: bon.SELECTORS[name](CANDS) for name in bon.SELECTORS}
  assert picks == {
    "prm_min": False,  # The unanswered candidate has the highest min (.99).
    "prm_product": False,  # .99^3 = .97 beats .4275.
    "prm_last": False,  # .99 again.
    # Votes weighted by min: "4": .3 + .5 + .2 = 1.0; "5": .6 + .7 = 1.3.
    "prm_weighted_vote": True,
    "orm": False,  # .9 is candidate 2 ("4").
    "majority": False,  # "4" three times, "5" twice.
    "oracle": True,
  }
  answered = [c for c in CANDS if c.answer is not None]
  assert bon.SELECTORS["prm_min"](answered) is True  # .7 (candidate 5) is now the highest.
  assert bon.SELECTORS["prm_product"](answered) is False  # .4275 (candidate 2).
  assert bon.SELECTORS["prm_last"](answered) is False  # .9 (candidate 2).


def test_ties_go_to_the_first():
  tie = [C("1", False, (0.5,), 0.5), C("2", True, (0.5,), 0.5)]
  assert bon.SELECTORS["prm_min"](tie) is False and bon.SELECTORS["orm"](tie) is False
  assert bon.SELECTORS["majority"](tie) is False  # One vote each: the answer seen first.
  assert bon.SELECTORS["majority"]([C(None, True)]) is False  # Nobody answered.


def test_curve_averages_random_subsets():
  problems = [CANDS, list(reversed(CANDS))]
  out = bon.curve(problems, ["oracle", "majority"], [1, 6], trials=200, seed=0)
  assert out["oracle"]["6"] == 1.0 and out["majority"]["6"] == 0.0
  assert out["oracle"]["1"] == pytest.approx(2 / 6, abs=0.06)  # Two of six are right.
  with pytest.raises(ValueError, match="N=8 is more than the 6 candidates"):
    bon.curve(problems, ["oracle"], [8])
  with pytest.raises(ValueError, match="Unknown selector"):
    bon.curve(problems, ["best"], [1])
