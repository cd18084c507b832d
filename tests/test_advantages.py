"""Advantage estimators against plain numpy loop references written here."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify import experience
from jaxrl_verify.models import config as model_config
from jaxrl_verify.models.transformer import ValueModel
from jaxrl_verify.rl import advantages as adv_lib
from jaxrl_verify.rl.advantages import ADVANTAGES, AdvantageInputs

G, T, K = 6, 7, 3  # generations, tokens, group size


def _batch(seed=0, holes=False):
  rng = np.random.default_rng(seed)
  length_g = np.array([7, 3, 1, 5, 7, 4])
  mask_gt = np.arange(T)[None, :] < length_g[:, None]
  if holes:
    mask_gt[0, 2] = False  # e.g. a tool-output token inside the completion
  return dict(
    reward_g=rng.normal(size=G).astype(np.float32),
    mask_gt=mask_gt,
    valid_g=np.array([True, True, False, True, True, True]),
    token_reward_gt=(rng.normal(size=(G, T)) * 0.1).astype(np.float32),
    values_gt=rng.normal(size=(G, T)).astype(np.float32),
    finished_eos_g=np.array([False, True, True, True, False, True]),
  )


def _np_token_rewards(b, with_token_rewards=True):
  r = np.zeros((G, T))
  for i in range(G):
    idx = np.nonzero(b["mask_gt"][i])[0]
    if with_token_rewards:
      r[i, idx] += b["token_reward_gt"][i, idx]
    r[i, idx[-1]] += b["reward_g"][i]
  return r


def _np_gae(b, gamma, lam):
  """Python loop GAE over the real tokens of each row; returns advantages and V_t."""
  r = _np_token_rewards(b)
  adv = np.zeros((G, T))
  for i in range(G):
    idx = list(np.nonzero(b["mask_gt"][i])[0])
    v = b["values_gt"][i]
    v_boot = 0.0 if b["finished_eos_g"][i] else v[idx[-1]]
    a_next = 0.0
    for n in reversed(range(len(idx))):
      t = idx[n]
      v_next = v[idx[n + 1]] if n + 1 < len(idx) else v_boot
      a_next = r[i, t] + gamma * v_next - v[t] + gamma * lam * a_next
      adv[i, t] = a_next
  return adv


@pytest.mark.parametrize("holes", [False, True])
def test_gae_matches_loop(holes):
  b = _batch(holes=holes)
  gamma, lam, lam_c = 0.9, 0.8, 1.0
  fn = jax.jit(functools.partial(adv_lib.gae, gamma=gamma, lam=lam, lambda_critic=lam_c))
  a, ret = fn(AdvantageInputs(**b))
  keep = b["mask_gt"] * b["valid_g"][:, None]
  want_a = _np_gae(b, gamma, lam) * keep
  want_ret = (_np_gae(b, gamma, lam_c) + b["values_gt"]) * keep
  np.testing.assert_allclose(a, want_a, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ret, want_ret, rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(a)[2] == 0) and np.all(np.asarray(ret)[2] == 0)


def test_gae_truncation_bootstraps_from_last_value():
  # One token, reward 0: terminated -> A = -V; truncated -> A = gamma*V - V.
  inputs = AdvantageInputs(
    reward_g=jnp.zeros(2),
    mask_gt=jnp.ones((2, 1), bool),
    values_gt=jnp.full((2, 1), 2.0),
    finished_eos_g=jnp.array([True, False]),
  )
  a, _ = adv_lib.gae(inputs, gamma=0.5, lam=1.0)
  np.testing.assert_allclose(np.asarray(a)[:, 0], [-2.0, -1.0])


def test_gae_requires_values():
  with pytest.raises(ValueError, match="values_gt"):
    adv_lib.gae(AdvantageInputs(reward_g=jnp.zeros(2), mask_gt=jnp.ones((2, 3))))


def _np_group(b, kind, ddof=1, eps=1e-6):
  a = np.zeros(G)
  for s in range(0, G, K):
    members = [i for i in range(s, s + K) if b["valid_g"][i]]
    r = np.array([b["reward_g"][i] for i in members], np.float64)
    for n, i in enumerate(members):
      if kind == "grpo":
        std = np.std(r, ddof=ddof) if len(r) > ddof else 0.0
        a[i] = (r[n] - r.mean()) / (std + eps)
      elif kind == "dr_grpo":
        a[i] = r[n] - r.mean()
      elif kind == "rloo":
        others = np.delete(r, n)
        a[i] = r[n] - others.mean() if len(others) else 0.0
  return a


@pytest.mark.parametrize("kind", ["grpo", "dr_grpo", "rloo"])
def test_group_estimators_match_loop(kind):
  b = _batch()
  b.pop("token_reward_gt"), b.pop("values_gt")
  fn = jax.jit(functools.partial(ADVANTAGES.get(kind), group_size=K))
  a, ret = fn(AdvantageInputs(**b))
  keep = b["mask_gt"] * b["valid_g"][:, None]
  np.testing.assert_allclose(a, _np_group(b, kind)[:, None] * keep, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ret, b["reward_g"][:, None] * keep, rtol=1e-6)


@pytest.mark.parametrize("kind", ["grpo", "dr_grpo", "rloo", "reinforce_pp"])
def test_all_equal_or_single_valid_groups_give_zero_without_nan(kind):
  # Group 0: all rewards equal; group 1: only one valid member.
  reward_g = jnp.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.5])
  valid_g = jnp.array([True, True, True, False, True, False])
  inputs = AdvantageInputs(reward_g=reward_g, mask_gt=jnp.ones((6, 4)), valid_g=valid_g)
  kw = {"group_baseline": True} if kind == "reinforce_pp" else {}
  a, ret = ADVANTAGES.get(kind)(inputs, group_size=3, **kw)
  assert np.all(np.isfinite(a)) and np.all(np.isfinite(ret))
  np.testing.assert_array_equal(a, 0.0)


def test_reinforce_pp_matches_loop():
  b = _batch()
  gamma = 0.95
  a, ret = jax.jit(functools.partial(adv_lib.reinforce_pp, gamma=gamma))(AdvantageInputs(**b))
  r = _np_token_rewards(b)
  want_ret = np.zeros((G, T))
  for i in range(G):
    acc = 0.0
    for t in reversed(range(T)):
      if b["mask_gt"][i, t]:
        acc = r[i, t] + gamma * acc
        want_ret[i, t] = acc
  keep = (b["mask_gt"] * b["valid_g"][:, None]).astype(bool)
  vals = want_ret[keep]
  want_a = np.where(keep, (want_ret - vals.mean()) / (vals.std() + 1e-8), 0.0)
  np.testing.assert_allclose(ret, want_ret * keep, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(a, want_a, rtol=1e-4, atol=1e-5)
  # Whitened over the valid real tokens: zero mean, unit variance there.
  np.testing.assert_allclose(np.asarray(a)[keep].mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(a)[keep].std(), 1.0, rtol=1e-4)


def test_group_estimators_reject_token_rewards_and_bad_group_size():
  b = _batch()
  with pytest.raises(ValueError, match="token_reward_gt"):
    adv_lib.grpo(AdvantageInputs(**b), group_size=K)
  with pytest.raises(ValueError, match="group_size=4"):
    adv_lib.rloo(AdvantageInputs(reward_g=jnp.zeros(6), mask_gt=jnp.ones((6, 2))), group_size=4)


def test_registry_names_and_unknown():
  assert ADVANTAGES.names() == ["dr_grpo", "gae", "grpo", "grpo_process", "reinforce_pp", "rloo"]
  with pytest.raises(ValueError, match=r"Unknown advantage estimator 'ppo'.*'grpo'"):
    ADVANTAGES.get("ppo")


def test_gradients_finite_under_jit():
  b = _batch()

  def total(values_gt, reward_g):
    inputs = AdvantageInputs(**{**b, "values_gt": values_gt, "reward_g": reward_g})
    a, ret = adv_lib.gae(inputs, gamma=0.99, lam=0.95)
    a2, _ = adv_lib.reinforce_pp(inputs, gamma=1.0)
    return a.sum() + ret.sum() + a2.sum()

  grads = jax.jit(jax.grad(total, argnums=(0, 1)))(b["values_gt"], b["reward_g"])
  assert all(np.all(np.isfinite(x)) for x in grads)


@pytest.mark.parametrize("kind", ["gae", "grpo", "reinforce_pp"])
def test_sharded_batch_gives_unsharded_result(kind):
  # Group and whitening statistics must be global when the g axis is split over devices.
  b = _batch()
  if kind != "gae":
    b.pop("values_gt")
  if kind == "grpo":
    b.pop("token_reward_gt")
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("data",))
  row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  sharded = jax.device_put(AdvantageInputs(**b), row)
  fn = jax.jit(functools.partial(ADVANTAGES.get(kind), group_size=K))
  a_sharded, ret_sharded = fn(sharded)
  a, ret = fn(AdvantageInputs(**b))
  assert len(a_sharded.sharding.device_set) == 2
  np.testing.assert_allclose(a_sharded, a, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ret_sharded, ret, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_equal_fractional_rewards_give_exactly_zero(name):
  """Float rounding of a group mean must not turn equal rewards into a signal."""
  group = 3
  reward_g = np.repeat(np.linspace(-0.9, 0.7, 2000, dtype=np.float32) / 3.0, group)
  inputs = AdvantageInputs(reward_g=reward_g, mask_gt=np.ones((reward_g.size, 2), bool))
  adv_gt, _ = ADVANTAGES.get(name)(inputs, group_size=group)
  assert np.all(np.asarray(adv_gt) == 0.0)


def _step_batch(seed=0):
  """Rows of `_batch` with 1-3 steps each, ending on real tokens; -1 pads `step_end_gs`."""
  b = _batch(seed)
  rng = np.random.default_rng(seed + 100)
  lengths = b["mask_gt"].sum(1)
  ends = np.full((G, 3), -1, np.int32)
  for i, n in enumerate(lengths):
    k = min(int(rng.integers(1, 4)), n)
    ends[i, :k] = np.sort(rng.choice(n, size=k, replace=False))
    ends[i, k - 1] = n - 1  # The last step ends the completion.
  scores = rng.uniform(0, 1, size=(G, 3)).astype(np.float32)
  scores[1] = scores[0]  # Ties across rows are fine.
  return b, ends, scores


def _np_grpo_process(b, ends, scores, outcome_weight=0.0, eps=1e-6):
  """DeepSeekMath process supervision, by loops: group-normalise every step reward, then a
  token's advantage sums the normalised rewards of the steps ending at or after it."""
  adv = np.zeros((G, T))
  for start in range(0, G, K):
    rows = [i for i in range(start, start + K) if b["valid_g"][i]]
    steps = [(i, e, scores[i, k]) for i in rows for k, e in enumerate(ends[i]) if e >= 0]
    r = np.array([x[2] for x in steps], np.float64)
    if len(r) == 0 or r.max() == r.min():
      continue
    mean, std = r.mean(), r.std(ddof=1)
    for i, e, score in steps:
      adv[i, : e + 1] += (score - mean) / (std + eps)
  if outcome_weight:
    for start in range(0, G, K):
      rows = [i for i in range(start, start + K) if b["valid_g"][i]]
      rew = np.array([b["reward_g"][i] for i in rows], np.float64)
      if len(rows) > 1 and rew.max() > rew.min():
        for i in rows:
          adv[i] += outcome_weight * (b["reward_g"][i] - rew.mean()) / (rew.std(ddof=1) + eps)
  return adv * b["mask_gt"] * b["valid_g"][:, None]


def test_place_step_rewards_puts_each_score_on_its_last_token():
  b, ends, scores = _step_batch()
  reward_gt, end_gt = adv_lib.place_step_rewards(ends, scores, b["mask_gt"])
  want_r, want_e = np.zeros((G, T)), np.zeros((G, T), bool)
  for i in range(G):
    for k, e in enumerate(ends[i]):
      if e >= 0:
        want_r[i, e], want_e[i, e] = scores[i, k], True
  np.testing.assert_allclose(reward_gt, want_r, atol=0)
  np.testing.assert_array_equal(end_gt, want_e)
  # A step end past the completion (or on a masked token) is dropped, not wrapped around.
  reward_gt, end_gt = adv_lib.place_step_rewards([[1, T + 4]], [[0.5, 0.9]], np.ones((1, T)))
  np.testing.assert_array_equal(np.nonzero(np.asarray(end_gt[0]))[0], [1])


@pytest.mark.parametrize("outcome_weight", [0.0, 0.5])
def test_grpo_process_matches_loop(outcome_weight):
  b, ends, scores = _step_batch()
  b.pop("token_reward_gt")
  b.pop("values_gt")
  reward_gt, end_gt = adv_lib.place_step_rewards(ends, scores, b["mask_gt"])
  inputs = AdvantageInputs(**b, step_reward_gt=reward_gt, step_end_gt=end_gt)
  fn = jax.jit(functools.partial(adv_lib.grpo_process, group_size=K, outcome_weight=outcome_weight))
  adv_gt, ret_gt = fn(inputs)
  np.testing.assert_allclose(adv_gt, _np_grpo_process(b, ends, scores, outcome_weight), atol=1e-5)
  # Returns: the raw step reward-to-go, for logging.
  want_ret = np.zeros((G, T))
  for i in range(G):
    for k, e in enumerate(ends[i]):
      if e >= 0:
        want_ret[i, : e + 1] += scores[i, k]
  np.testing.assert_allclose(ret_gt, want_ret * b["mask_gt"] * b["valid_g"][:, None], atol=1e-6)

  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("data",))
  row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  a_sharded, _ = fn(jax.device_put(inputs, row))
  assert len(a_sharded.sharding.device_set) == 2
  np.testing.assert_allclose(a_sharded, adv_gt, rtol=1e-5, atol=1e-6)


def test_grpo_process_equal_steps_give_zero_and_missing_steps_are_refused():
  b, ends, _ = _step_batch()
  b.pop("token_reward_gt")
  reward_gt, end_gt = adv_lib.place_step_rewards(ends, np.full((G, 3), 0.7), b["mask_gt"])
  inputs = AdvantageInputs(**b, step_reward_gt=reward_gt, step_end_gt=end_gt)
  adv_gt, _ = adv_lib.grpo_process(inputs, group_size=K)
  assert np.all(np.asarray(adv_gt) == 0.0)
  with pytest.raises(ValueError, match="needs step_reward_gt and step_end_gt"):
    adv_lib.grpo_process(AdvantageInputs(**b), group_size=K)


def _scorer(advantage, hparams=()):
  cfg = experience.ExperienceConfig(group_size=K, advantage=advantage, advantage_hparams=hparams)
  value_graphdef = None
  if advantage == "gae":  # A real critic's graph: the scorer reads values, never calls it.
    mc = model_config.get_preset("mini", vocab_size=64)
    value_graphdef, _ = nnx.split(ValueModel(mc, rngs=nnx.Rngs(0)))
  return experience.DeviceScorer(None, value_graphdef, cfg)


@pytest.mark.parametrize("advantage", ["grpo_process", "gae"])
def test_the_experience_stage_places_prm_step_rewards_sharded_as_numpy_says(advantage):
  """The RL loop's advantage stage (`experience.DeviceScorer`) given a PRM's step rewards:
  `grpo_process` gets them as steps (DeepSeekMath), `gae` as per-token rewards on step-final
  tokens (Math-Shepherd's step-by-step PPO); sharded over 2 devices, against numpy loops."""
  b, ends, scores = _step_batch()
  hparams = (("outcome_weight", 0.5),) if advantage == "grpo_process" else ()
  scorer = _scorer(advantage, hparams)
  zeros = np.zeros((G, T), np.float32)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("data",))
  row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  args = jax.device_put(
    (b["reward_g"], b["valid_g"], b["mask_gt"], zeros, zeros, b["values_gt"], b["finished_eos_g"]),
    row,
  )
  adv_gt, _ = scorer.advantages(*args, jax.device_put((scores, ends), row))
  assert len(adv_gt.sharding.device_set) == 2
  if advantage == "grpo_process":
    want = _np_grpo_process(b, ends, scores, outcome_weight=0.5)
  else:
    token_reward_gt = np.zeros((G, T), np.float32)
    for i in range(G):
      for k, e in enumerate(ends[i]):
        if e >= 0:
          token_reward_gt[i, e] += scores[i, k]
    want = _np_gae({**b, "token_reward_gt": token_reward_gt}, gamma=1.0, lam=0.95)
    want = want * b["mask_gt"] * b["valid_g"][:, None]
  np.testing.assert_allclose(np.asarray(adv_gt), want, rtol=1e-5, atol=1e-5)
