"""Losses, aggregations, logit helpers and KL estimators against numpy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_verify.rl import kl as kl_lib
from jaxrl_verify.rl import losses

G, T = 6, 5


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  length_g = np.array([5, 2, 0, 4, 1, 3])  # row 2: an invalid row, fully masked
  mask = np.arange(T)[None, :] < length_g[:, None]
  logp_old = -rng.uniform(0.1, 3.0, size=(G, T)).astype(np.float32)
  logp = (logp_old + rng.normal(scale=0.4, size=(G, T))).astype(np.float32)
  logp[~mask] = -1e4  # garbage on padding must not leak into anything
  adv = rng.normal(size=(G, T)).astype(np.float32)
  return logp, logp_old, adv, mask


def _np_aggregate(x, m, name, max_len=T):
  m = m.astype(np.float64)
  lens = m.sum(1)
  n_seqs = max((lens > 0).sum(), 1)
  if name == "token_mean":
    return (x * m).sum() / max(m.sum(), 1)
  if name == "seq_mean_token_mean":
    return sum((x[i] * m[i]).sum() / lens[i] for i in range(len(x)) if lens[i] > 0) / n_seqs
  if name == "seq_mean_token_sum":
    return (x * m).sum() / n_seqs
  return (x * m).sum() / n_seqs / max_len


def _np_ppo(logp, logp_old, adv, eps_low, eps_high, c):
  out = np.zeros_like(adv, np.float64)
  for i in range(G):
    for t in range(T):
      a = adv[i, t]
      rho = np.exp(np.float64(logp[i, t]) - logp_old[i, t])
      loss = max(-a * rho, -a * min(max(rho, 1 - eps_low), 1 + eps_high))
      if c is not None and a < 0:
        loss = min(loss, -c * a)
      out[i, t] = loss
  return out


@pytest.mark.parametrize("aggregation", losses.AGGREGATIONS.names())
@pytest.mark.parametrize("eps_high,c", [(0.2, None), (0.28, 3.0)])
def test_ppo_clip_loss_matches_loop(aggregation, eps_high, c):
  logp, logp_old, adv, mask = _batch()
  fn = jax.jit(
    functools.partial(
      losses.ppo_clip_loss, eps_low=0.2, eps_high=eps_high, dual_clip_c=c, aggregation=aggregation
    )
  )
  loss, metrics = fn(logp, logp_old, adv, mask)
  logp_m = np.where(mask, logp, logp_old)
  want = _np_aggregate(_np_ppo(logp_m, logp_old, adv, 0.2, eps_high, c), mask, aggregation)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  rho = np.exp(logp_m - logp_old)[mask]
  a = adv[mask]
  np.testing.assert_allclose(metrics["ratio_mean"], rho.mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics["clip_frac_low"], np.mean((a < 0) & (rho < 0.8)), rtol=1e-6)
  np.testing.assert_allclose(
    metrics["clip_frac_high"], np.mean((a > 0) & (rho > 1 + eps_high)), rtol=1e-6
  )
  np.testing.assert_allclose(metrics["approx_kl"], np.mean(rho - 1 - np.log(rho)), rtol=1e-4)
  assert all(np.isfinite(v) for v in metrics.values())


def _per_token_grads(ratio, adv, **kw):
  """d loss / d logp per token (one row, logp_old = 0), in one jitted call."""
  n = len(ratio)
  fn = lambda lp: losses.ppo_clip_loss(
    lp, jnp.zeros((1, n)), jnp.asarray([adv], jnp.float32), jnp.ones((1, n)), **kw
  )[0]
  return np.asarray(jax.jit(jax.grad(fn))(jnp.log(jnp.asarray([ratio], jnp.float32))))[0]


def test_clip_higher_is_asymmetric():
  ratio = [1.25, 1.3, 0.79, 0.81, 0.75]
  adv = [1.0, 1.0, -1.0, -1.0, 1.0]
  # rho = 1.25: clipped by a symmetric 0.2, still learning with eps_high = 0.28; negative
  # advantages clip at 1 - eps_low = 0.8 regardless of eps_high; A > 0 never clips below.
  want_nonzero = [True, False, False, True, True]
  np.testing.assert_array_equal(
    _per_token_grads(ratio, adv, eps_low=0.2, eps_high=0.28) != 0, want_nonzero
  )
  np.testing.assert_array_equal(
    _per_token_grads(ratio, adv, eps_low=0.2) != 0, [False, False, False, True, True]
  )


def test_dual_clip_bounds_negative_advantage_loss():
  big = jnp.full((1, 1), np.log(10.0))
  args = (jnp.zeros((1, 1)), jnp.full((1, 1), -2.0), jnp.ones((1, 1)))
  loss, metrics = losses.ppo_clip_loss(big, *args, dual_clip_c=3.0)
  np.testing.assert_allclose(loss, 6.0)  # -c * A instead of -A * rho = 20
  assert float(metrics["dual_clip_frac"]) == 1.0
  np.testing.assert_array_equal(
    _per_token_grads([10.0, 2.9], [-2.0, -2.0], dual_clip_c=3.0) != 0, [False, True]
  )
  np.testing.assert_allclose(losses.ppo_clip_loss(big, *args)[0], 20.0, rtol=1e-6)
  with pytest.raises(ValueError, match="dual_clip_c"):
    losses.ppo_clip_loss(big, *args, dual_clip_c=0.5)


@pytest.mark.parametrize("aggregation", losses.AGGREGATIONS.names())
def test_global_normalisers_make_split_losses_add_up(aggregation):
  logp, logp_old, adv, mask = _batch()
  fn = jax.jit(
    functools.partial(losses.ppo_clip_loss, eps_low=0.2, eps_high=0.3, aggregation=aggregation)
  )
  full, _ = fn(logp, logp_old, adv, mask)
  counts = losses.batch_counts(mask)
  for splits in ([0, 3, 6], [0, 1, 4, 6], [0, 2, 3, 5, 6]):
    parts = [
      fn(logp[a:b], logp_old[a:b], adv[a:b], mask[a:b], max_len=T, **counts)[0]
      for a, b in zip(splits[:-1], splits[1:])
    ]
    np.testing.assert_allclose(sum(parts), full, rtol=1e-5)
  # Local normalisers on uneven splits would not add up (so the test can fail).
  x = np.ones((G, T), np.float32)
  halves = [losses.aggregate(aggregation, x[s], mask[s]) for s in (slice(0, 1), slice(1, G))]
  assert abs(float(sum(halves)) - float(losses.aggregate(aggregation, x, mask))) > 1e-3


def test_tis_weights_and_loss():
  logp, logp_old, adv, mask = _batch()
  rng = np.random.default_rng(1)
  sample_logp = (logp_old + rng.normal(scale=1.0, size=(G, T))).astype(np.float32)
  w = losses.tis_weights(logp_old, sample_logp, mask, cap=2.0)
  np.testing.assert_allclose(w, np.minimum(np.exp(logp_old - sample_logp), 2.0) * mask, rtol=1e-5)
  assert float(jnp.max(w)) == 2.0
  loss, _ = losses.ppo_clip_loss(logp, logp_old, adv, mask, tis_weight_gt=w)
  logp_m = np.where(mask, logp, logp_old)
  want = _np_aggregate(_np_ppo(logp_m, logp_old, adv, 0.2, 0.2, None) * w, mask, "token_mean")
  np.testing.assert_allclose(loss, want, rtol=1e-5)


@pytest.mark.parametrize("clip_eps", [0.2, None])
def test_value_loss_matches_loop(clip_eps):
  rng = np.random.default_rng(2)
  _, _, _, mask = _batch()
  v_old = rng.normal(size=(G, T)).astype(np.float32)
  v = (v_old + rng.normal(scale=0.5, size=(G, T))).astype(np.float32)
  ret = rng.normal(size=(G, T)).astype(np.float32)
  fn = jax.jit(functools.partial(losses.value_loss, clip_eps=clip_eps))
  loss, metrics = fn(v, v_old, ret, mask)
  want = np.zeros((G, T))
  for i in range(G):
    for t in range(T):
      e = (v[i, t] - ret[i, t]) ** 2
      if clip_eps is not None:
        vc = v_old[i, t] + min(max(v[i, t] - v_old[i, t], -clip_eps), clip_eps)
        e = max(e, (vc - ret[i, t]) ** 2)
      want[i, t] = 0.5 * e
  np.testing.assert_allclose(loss, _np_aggregate(want, mask, "token_mean"), rtol=1e-5)
  if clip_eps is not None:
    assert 0.0 < float(metrics["value_clip_frac"]) < 1.0


def test_unknown_aggregation_lists_names():
  with pytest.raises(ValueError, match=r"Unknown loss aggregation 'mean'.*'token_mean'"):
    losses.aggregate("mean", jnp.ones((1, 1)), jnp.ones((1, 1)))


# ------------------------------------------------------------------ KL


def test_kl_estimators_match_formulas_and_expectations():
  rng = np.random.default_rng(4)
  p = rng.dirichlet(np.ones(7))
  p_ref = rng.dirichlet(np.ones(7))
  logp, ref = np.log(p)[None], np.log(p_ref)[None]
  exact_kl = np.sum(p * (np.log(p) - np.log(p_ref)))
  log_r = ref - logp
  want = {"k1": -log_r, "k2": 0.5 * log_r**2, "k3": np.exp(log_r) - 1 - log_r}
  for name, fn in [(n, kl_lib.KL_ESTIMATORS.get(n)) for n in ("k1", "k2", "k3")]:
    est = np.asarray(jax.jit(fn)(logp, ref), np.float64)
    np.testing.assert_allclose(est, want[name], rtol=1e-5, atol=1e-6)
    if name != "k2":  # k1 and k3 are unbiased: E_p[k] = KL(p || p_ref) exactly.
      np.testing.assert_allclose(np.sum(p * est[0]), exact_kl, rtol=1e-4)
  assert np.all(want["k3"] >= 0)


def test_kl_reward_and_loss_respect_mask():
  logp, logp_old, _, mask = _batch()
  r = kl_lib.kl_penalty_rewards(logp, logp_old, mask, beta=0.1, estimator="k1")
  np.testing.assert_allclose(r, np.where(mask, -0.1 * (logp - logp_old), 0.0), rtol=1e-5)
  fn = jax.jit(functools.partial(kl_lib.kl_loss, estimator="k3", aggregation="token_mean"))
  loss = fn(logp, logp_old, mask)
  lr = np.where(mask, logp_old - logp, 0.0)
  np.testing.assert_allclose(loss, (np.exp(lr) - 1 - lr)[mask].mean(), rtol=1e-5)
  grad = jax.jit(jax.grad(fn))(jnp.asarray(logp), logp_old, mask)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[~mask] == 0)
  # Clamping bounds each token's KL: ref 30 nats above the policy gives k3 ~ e^30 unclamped.
  far = (jnp.zeros((1, 2)) - 30.0, jnp.zeros((1, 2)), jnp.ones((1, 2)))
  np.testing.assert_allclose(kl_lib.kl_loss(*far, clamp=10.0), 10.0)
  assert float(kl_lib.kl_loss(*far)) > 1e12
  np.testing.assert_allclose(
    kl_lib.kl_penalty_rewards(*far, beta=0.5, estimator="k3", clamp=10.0), -0.5 * 10.0
  )


def test_jit_with_static_hyperparameter_names():
  logp, logp_old, adv, mask = _batch()
  static = ("eps_low", "eps_high", "dual_clip_c", "aggregation")
  fn = jax.jit(losses.ppo_clip_loss, static_argnames=static)
  loss, _ = fn(
    logp,
    logp_old,
    adv,
    mask,
    eps_high=0.3,
    aggregation="seq_mean_token_sum_norm",
    max_len=8,
    **losses.batch_counts(mask),
  )
  want, _ = losses.ppo_clip_loss(
    logp, logp_old, adv, mask, eps_high=0.3, max_len=8, aggregation="seq_mean_token_sum_norm"
  )
  np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_policy_loss_gradients_finite_and_zero_on_padding():
  logp, logp_old, adv, mask = _batch()

  def total(lp):
    pl, _ = losses.ppo_clip_loss(lp, logp_old, adv, mask, eps_high=0.28, dual_clip_c=3.0)
    return pl + 0.01 * kl_lib.kl_loss(lp, logp_old, mask)

  grad = np.asarray(jax.jit(jax.grad(total))(jnp.asarray(logp)))
  assert np.all(np.isfinite(grad)) and np.all(grad[~mask] == 0) and np.any(grad[mask] != 0)


def test_pg_loss_is_the_unclipped_importance_weighted_surrogate():
  rng = np.random.default_rng(3)
  logp, logp_old, adv = (rng.normal(size=(4, 5)).astype(np.float32) for _ in range(3))
  mask = (rng.random((4, 5)) > 0.3).astype(np.float32)
  loss, metrics = losses.POLICY_LOSSES.get("pg")(logp, logp_old, adv, mask)
  ratio = np.exp(np.where(mask > 0, logp - logp_old, 0.0))
  np.testing.assert_allclose(loss, (-adv * ratio * mask).sum() / mask.sum(), rtol=1e-5)
  np.testing.assert_allclose(metrics["ratio_mean"], (ratio * mask).sum() / mask.sum(), rtol=1e-5)
  # On-policy its gradient is the REINFORCE one: -A * d logp, per token (token mean).
  grad = jax.grad(lambda lp: losses.POLICY_LOSSES.get("pg")(lp, logp, adv, mask)[0])(logp)
  np.testing.assert_allclose(grad, -adv * mask / mask.sum(), rtol=1e-5, atol=1e-7)
