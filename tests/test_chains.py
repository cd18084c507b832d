"""The chain task: exactly checkable steps, planted first errors, and its tfds builder."""

import numpy as np
import pytest

from jaxrl_verify.data import chains, tasks
from jaxrl_verify.verifiers import math as math_verifier

OPS = [("+", 5), ("-", 3), ("*", 2)]  # 7 -> 12 -> 9 -> 18
GOLD = ["7 + 5 = 12.", "12 - 3 = 9.", "9 * 2 = 18.", "\\boxed{18}"]


def test_solution_and_first_error_on_hand_worked_cases():
  assert chains.solution_steps(7, OPS) == GOLD
  assert chains.first_error(7, OPS, GOLD) == -1
  cases = {
    2: ["7 + 5 = 12.", "12 - 3 = 9.", "9 * 2 = 17.", "\\boxed{17}"],  # wrong result
    1: ["7 + 5 = 12.", "12 + 3 = 15.", "15 * 2 = 30.", "\\boxed{30}"],  # wrong operation
    0: ["5 + 5 = 10.", "10 - 3 = 7.", "7 * 2 = 14.", "\\boxed{14}"],  # wrong number copied
    3: ["7 + 5 = 12.", "12 - 3 = 9.", "9 * 2 = 18.", "\\boxed{12}"],  # wrong box
    4: [*GOLD, "\\boxed{18}"],  # an extra step
  }
  for err, steps in cases.items():
    assert chains.first_error(7, OPS, steps) == err, steps
  assert chains.first_error(7, OPS, GOLD[:2]) == 2  # missing steps: wrong where they stop
  assert chains.first_error(7, OPS, ["7 plus 5 is 12", *GOLD[1:]]) == 0  # unparsable
  assert chains.step_labels(7, OPS, cases[2]) == [True, True, False, False]
  assert chains.step_labels(7, OPS, GOLD) == [True] * 4


@pytest.mark.parametrize("kind", chains.ERROR_KINDS)
def test_planted_errors_are_first_errors_with_wrong_answers(kind):
  rng = np.random.default_rng(0)
  for level in range(1, chains.Chains.MAX_LEVEL + 1):
    for _ in range(20):
      p = chains.sample_problem(rng, level)
      ops = chains.parse_ops(p["ops"])
      assert len(ops) == level + 2 and chains.format_ops(ops) == p["ops"]
      for at in range(len(ops)):
        bad = chains.corrupt(p["start"], ops, rng, kind=kind, at=at)
        assert chains.first_error(p["start"], ops, bad) == at, (kind, at, bad)
        assert len(bad) == len(ops) + 1
        verdict = math_verifier.verify_math("\n".join(bad), p["answer"])
        assert verdict.status == "wrong", (bad, p["answer"])  # The slip changes the answer.
  with pytest.raises(ValueError, match="Unknown error kind"):
    chains.corrupt(7, OPS, rng, kind="typo", at=0)
  with pytest.raises(ValueError, match="not a computation step"):
    chains.corrupt(7, OPS, rng, kind="wrong_result", at=3)


def test_builder_splits_fields_and_verifier(tmp_path):
  task = tasks.get_task("chains", size="tiny", difficulty=(1, 6))
  train, test = task.data_source("train", tmp_path), task.data_source("test", tmp_path)
  assert (len(train), len(test)) == (64, 16)
  questions = {train[i]["question"] for i in range(len(train))}
  assert not questions & {test[i]["question"] for i in range(len(test))}
  for i in range(len(train)):
    ex = train[i]
    ops, steps = chains.parse_ops(ex["ops"]), ex["solution"].split("\n")
    assert len(ops) in (3, 8) and chains.first_error(int(ex["start"]), ops, steps) == -1
    assert all(0 <= v <= chains.MAX_VALUE for v in chains.values(int(ex["start"]), ops))
    assert math_verifier.verify_math(ex["solution"], ex["answer"]).status == "ok"
  assert task.format_prompt(train[0]).startswith("Q: Start with ")
