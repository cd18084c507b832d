"""Reward shaping and dynamic sampling against plain-Python references."""

import functools

import jax
import numpy as np
import pytest

from jaxrl_verify.rl import shaping


def test_verdict_rewards_mask_and_zero_policies():
  status = ["ok", "wrong", "timeout", "invalid", "error", "ok"]
  reward = [1.0, 0.0, 1.0, 0.0, 0.5, 1.0]
  r, v = shaping.verdict_rewards(status, reward)
  np.testing.assert_array_equal(v, [True, True, False, True, False, True])
  np.testing.assert_array_equal(r, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
  r, v = shaping.verdict_rewards(status, reward, policy="zero")
  assert v.all() and v.dtype == bool
  np.testing.assert_array_equal(r, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
  # A NaN or infinite reward is a failed check, whatever the status says.
  r, v = shaping.verdict_rewards(["ok", "wrong", "ok"], [np.nan, -np.inf, 1.0])
  np.testing.assert_array_equal(v, [False, False, True])
  np.testing.assert_array_equal(r, [0.0, 0.0, 1.0])
  with pytest.raises(ValueError, match="policy 'drop'.*'mask'"):
    shaping.verdict_rewards(status, reward, policy="drop")
  with pytest.raises(ValueError, match=r"\['crashed'\]"):
    shaping.verdict_rewards(["crashed"], [0.0])


def test_overlong_penalty_matches_dapo_formula():
  max_len, cache = 20, 8
  lengths = np.arange(0, max_len + 1)

  def ref(n):
    if n <= max_len - cache:
      return 0.0
    return ((max_len - cache) - n) / cache

  fn = jax.jit(functools.partial(shaping.overlong_penalty, max_len=max_len, cache_len=cache))
  np.testing.assert_allclose(fn(lengths), [ref(n) for n in lengths], atol=1e-7)
  assert float(fn(np.array([max_len]))[0]) == -1.0
  half = shaping.overlong_penalty(lengths, max_len=max_len, cache_len=cache, factor=0.5)
  np.testing.assert_allclose(half, [0.5 * ref(n) for n in lengths], atol=1e-7)
  with pytest.raises(ValueError, match="cache_len"):
    shaping.overlong_penalty(lengths, max_len=4, cache_len=5)


def test_overlong_filter():
  valid = np.array([True, True, False, True])
  eos = np.array([True, False, True, True])
  np.testing.assert_array_equal(shaping.overlong_filter(valid, eos), [True, False, False, True])
  np.testing.assert_array_equal(shaping.overlong_filter(valid, eos, enabled=False), valid)


def _ref_keep(reward, valid, k):
  out = []
  for s in range(0, len(reward), k):
    vals = [reward[i] for i in range(s, s + k) if valid[i]]
    out.append(len(vals) >= 2 and len(set(vals)) > 1)
  return out


def test_keep_groups_matches_reference():
  rng = np.random.default_rng(0)
  for _ in range(20):
    reward = rng.integers(0, 2, size=12).astype(float)
    valid = rng.random(12) > 0.2
    np.testing.assert_array_equal(
      shaping.keep_groups(reward, valid, group_size=4), _ref_keep(reward, valid, 4)
    )
  # An invalid member with a different reward does not make a group informative.
  assert not shaping.keep_groups([1, 1, 0], [True, True, False], group_size=3)[0]
  with pytest.raises(ValueError, match="groups of 4"):
    shaping.keep_groups(np.zeros(6), group_size=4)


def test_group_accumulator_drops_and_refills():
  acc = shaping.GroupAccumulator(target_groups=3, group_size=2)
  rounds = [
    (np.array([0.0, 1.0, 1.0, 1.0]), ["a0", "a1", "b0", "b1"]),  # keeps group a
    (np.array([0.0, 0.0, 1.0, 1.0]), ["c0", "c1", "d0", "d1"]),  # keeps nothing
    (np.array([1.0, 0.0, 0.5, 1.0]), ["e0", "e1", "f0", "f1"]),  # keeps e and f
  ]
  kept = []
  for reward, text in rounds:
    assert not acc.full
    keep = shaping.keep_groups(reward, group_size=2)
    kept.append(acc.add(keep, reward_g=reward, text=text))
  assert kept == [1, 0, 2] and acc.full and acc.rounds == 3 and acc.seen_groups == 6
  out = acc.take()
  assert out["text"] == ["a0", "a1", "e0", "e1", "f0", "f1"]
  np.testing.assert_array_equal(out["reward_g"], [0.0, 1.0, 1.0, 0.0, 0.5, 1.0])
  assert acc.num_groups == 0 and not acc.full
  # Surplus groups beyond the target are dropped.
  acc.add(np.ones(4, bool), x=np.arange(8))
  np.testing.assert_array_equal(acc.take()["x"], np.arange(6))
  with pytest.raises(ValueError, match="Only 0 of 3"):
    acc.take()
  with pytest.raises(ValueError, match="expected 4"):
    acc.add(np.ones(2, bool), x=np.arange(3))
