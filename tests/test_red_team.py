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


@pytest.mark.parametrize("task_name", ["arithmetic", "chains"])
def test_solution_texts_attack_each_real_example_as_their_kinds_say(task_name, tmp_path):
  """On a real tfds split, the verifier (a perfect outcome judge) accepts the honest text,
  rejects every attack that changes or drops the answer, and accepts the ones that keep it."""
  from jaxrl_verify.data import tasks
  from jaxrl_verify.verifiers.math import verify_math

  test = tasks.get_task(task_name, size="tiny", difficulty=(2,)).data_source("test", tmp_path)
  examples = [test[i] for i in range(8)]
  honest, adversarial = red_team.solution_texts(examples, np.random.default_rng(0))
  kinds = red_team.KINDS if task_name == "chains" else red_team.TEXT_KINDS
  assert list(adversarial) == list(kinds) and len(honest) == 8

  def correct(texts):
    return [verify_math(t, str(ex["answer"])).reward >= 0.5 for t, ex in zip(texts, examples)]

  assert all(correct(honest))
  wrong = "hidden_wrong_step" if task_name == "chains" else "wrong_answer"
  for kind in (wrong, "truncated", "master_key"):
    assert not any(correct(adversarial[kind])), kind
  for kind in ("right_answer_nonsense_steps", "repeated_steps"):
    assert all(correct(adversarial[kind])), kind
  assert all(t not in honest for t in adversarial["right_answer_nonsense_steps"])


def test_solution_texts_name_a_solution_without_a_boxed_answer():
  with pytest.raises(ValueError, match="ending in"):
    red_team.solution_texts([{"solution": "no answer here", "answer": "1"}], None)
