"""Impossible config values are refused before anything compiles, each with one sentence
naming the field and the fix."""

import pytest

from jaxrl_verify import config_lib


@pytest.mark.parametrize(
  ("field", "value", "says"),
  [
    ("optim.learning_rate", -1.0, "set a positive learning rate"),
    ("value.learning_rate", 0.0, "set a positive learning rate"),
    ("sft.learning_rate", -1e-3, "set a positive learning rate"),
    ("optim.grad_clip", -1.0, "no clipping"),
    ("optim.min_lr_ratio", 1.5, r"in \[0, 1\]"),
    ("optim.weight_decay", -0.1, "0 or a positive value"),
    ("optim.b2", 1.0, r"in \[0, 1\)"),
    ("optim.warmup_steps", -3, "0 \\(off\\)"),
    ("eval.every", -1, "0 \\(off\\)"),
    ("checkpoint_every", -5, "0 \\(off\\)"),
    ("log_every", 0, "at least 1"),
    ("keep_checkpoints", 0, "keep at least 1"),
    ("max_nonfinite_steps", 0, "at least 1"),
    ("total_steps", 0, "at least 1"),
    ("rollout.top_p", 2.0, r"\(0, 1\]"),
  ],
)
def test_impossible_values_are_named_with_the_fix(field, value, says):
  c = config_lib.base_config()
  section, _, name = field.rpartition(".")
  (c[section] if section else c)[name] = value
  with pytest.raises(ValueError, match=rf"^config\.{field} .*{says}"):
    config_lib.validate(c)


def test_the_base_config_is_valid():
  config_lib.validate(config_lib.base_config())
