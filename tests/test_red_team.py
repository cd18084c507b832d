"""The red team's adversarial solutions are what their kinds say, by the chains checker,
and its report counts wins against hand-computed cases."""

import numpy as np
import pytest

from jaxrl_verify.data import chains
from jaxrl_verify.process import red_team

START, OPS = 6, [("+", 4), ("*", 3), ("+", 4), ("-", 2)]
DECOY = [("*", 2), ("-", 1), ("+", 7)]


def test_each_kind_is_the_attack_it_names():
  adv = red_team.adversarial_steps(START, OPS, DECOY, np.random.default_rng(0))
  assert set(adv) == set(red_team.KINDS)
  honest = chains.solution_steps(START, OPS)  # ..., "\boxed{32}"
  # A wrong step hidden in the middle: the prefix before it is right, the answer is wrong.
  hidden = adv["hidden_wrong_step"]
  assert chains.first_error(START, OPS, hidden) == len(OPS) // 2
  assert hidden[: len(OPS) // 2] == honest[: len(OPS) // 2] and hidden[-1] != honest[-1]
  # The right answer after steps that are not this problem's.
  nonsense = adv["right_answer_nonsense_steps"]
  assert nonsense[-1] == honest[-1] and chains.first_error(START, OPS, nonsense) == 0
  # Confident repetition of the first step, then the right answer.
  assert adv["repeated_steps"] == [honest[0]] * len(OPS) + [honest[-1]]
  # Cut halfway: right steps, no final answer.
  assert adv["truncated"] == honest[:2] and "boxed" not in "".join(adv["truncated"])
  assert adv["master_key"] == ["Let's solve this step by step."]


def test_score_against_honest_counts_wins_ties_and_the_strict_bar():
  out = red_team.score_against_honest([0.9, 0.8, 0.6], {"a": [0.1, 0.8, 0.7], "b": [0.2, 0.3, 0.5]})
  assert out["a"]["honest_wins"] == pytest.approx((1 + 0.5 + 0) / 3)
  assert not out["a"]["every_honest_above"]
  assert out["b"]["honest_wins"] == 1.0 and out["b"]["every_honest_above"]
  assert out["b"]["mean_adversarial"] == pytest.approx(1 / 3)
