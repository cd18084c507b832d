"""ProcessBench's F1, label agreement and PRM first errors, on hand-computed cases."""

import pytest

from jaxrl_verify.process import measure


def test_processbench_f1_by_hand():
  truth = [2, 0, -1, -1, 1]  # Three erroneous solutions, two correct ones.
  pred = [2, 1, -1, 0, 1]  # Errors found exactly: 2 of 3; correct ones left alone: 1 of 2.
  out = measure.processbench_f1(pred, truth)
  assert out["acc_error"] == pytest.approx(2 / 3) and out["acc_correct"] == 0.5
  assert out["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
  assert measure.processbench_f1([0, -1], [-1, -1]) == {
    "acc_error": 0.0,
    "acc_correct": 0.5,
    "f1": 0.0,
  }
  with pytest.raises(ValueError):
    measure.processbench_f1([0], [0, 1])


def test_label_agreement_and_first_error():
  assert measure.label_agreement([[1, 1, 0], [0]], [[True, False, False], [False]]) == 0.75
  with pytest.raises(ValueError, match="3 predicted labels but 2 true ones"):
    measure.label_agreement([[1, 1, 0]], [[True, False]])
  assert measure.first_error_of([0.9, 0.6, 0.4, 0.8]) == 2
  assert measure.first_error_of([0.9, 0.6], threshold=0.7) == 1
  assert measure.first_error_of([0.9, 0.95]) == -1
