"""Advantage estimators: pure jnp functions registered by name in `ADVANTAGES`.

Uniform contract. Every estimator is called as

  advantages_gt, returns_gt = ADVANTAGES.get(name)(inputs, group_size=G, **hparams)

with `inputs` an `AdvantageInputs` of plain arrays and `hparams` Python scalars
(make them static under `jax.jit`, e.g. with `functools.partial`). An estimator's
hyperparameters are its keyword-only parameters with defaults (`group_size` aside, which
comes from the rollout layout); `ADVANTAGES.hparams(name)` lists them and the config
sets them under `config.algo.advantage_hparams.<name>`. Generations are
grouped contiguously: generation i belongs to prompt i // group_size.

Masks. `mask_gt` marks real completion tokens (right padding is usual, holes are
allowed: masked positions are skipped by the recursions and get advantage 0 and
return 0). `valid_g` marks generations whose verdict can be trusted (verifier
timeouts and errors are False): invalid rows get advantage 0 and return 0, and
are left out of group statistics and of batch whitening. Losses should use
`loss_mask(mask_gt, valid_g)` so invalid rows also carry no value loss.

`returns_gt` are the value targets for GAE and the (undiscounted or discounted)
reward-to-go for the critic-free estimators, reported for logging.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl_verify.registry import Registry

ADVANTAGES: Registry = Registry(
  "advantage estimator",
  structural=("group_size",),
  how_to_register="@jaxrl_verify.rl.advantages.ADVANTAGES.register(name)",
)


@struct.dataclass
class AdvantageInputs:
  """Everything an advantage estimator may read (all device arrays).

  Attributes:
    reward_g: float [g] outcome reward of each generation (the verifier's).
    mask_gt: bool/float [g, t] True on real completion tokens.
    valid_g: bool [g] or None (all valid); False for verifier timeouts/errors.
    token_reward_gt: float [g, t] or None; extra per-token rewards added to the
      outcome reward, e.g. KL-in-reward penalties (`kl.kl_penalty_rewards`) or
      process step rewards placed on step-final tokens.
    values_gt: float [g, t] or None; critic values V(s_t) of the state before
      token t is emitted (needed by `gae`).
    finished_eos_g: bool [g] or None (all terminated); False for rows cut at the
      length limit (truncation), which `gae` bootstraps instead of terminating.
    step_reward_gt: float [g, t] or None; process rewards (e.g. a PRM's score of each
      step), each on its step's last token (`place_step_rewards`), 0 elsewhere.
    step_end_gt: bool [g, t] or None; True on the last token of every step, i.e. where
      `step_reward_gt` holds a reward (a step may well score exactly 0).
  """

  reward_g: Any
  mask_gt: Any
  valid_g: Any = None
  token_reward_gt: Any = None
  values_gt: Any = None
  finished_eos_g: Any = None
  step_reward_gt: Any = None
  step_end_gt: Any = None


def place_step_rewards(step_end_gs, step_scores_gs, mask_gt) -> tuple[jax.Array, jax.Array]:
  """Puts step rewards on their steps' last tokens: (step_reward_gt, step_end_gt).

  Args:
    step_end_gs: int [g, s] completion-token index of each step's last token; -1 pads
      rows with fewer than s steps.
    step_scores_gs: float [g, s] the reward of each step (ignored where padded).
    mask_gt: [g, t] real completion tokens; a step end on a masked or out-of-range
      position is dropped.

  Returns:
    float32 [g, t] rewards (0 off step ends) and bool [g, t] step ends. Used as
    `token_reward_gt` they are Math-Shepherd's step-by-step PPO rewards for `gae`; as
    `step_reward_gt` / `step_end_gt` the input of `grpo_process`.
  """
  step_end_gs = jnp.asarray(step_end_gs, jnp.int32)
  mask_gt = jnp.asarray(mask_gt, bool)
  t = mask_gt.shape[1]
  real_gs = (step_end_gs >= 0) & (step_end_gs < t)
  onehot_gst = jax.nn.one_hot(jnp.where(real_gs, step_end_gs, -1), t, dtype=jnp.float32)
  onehot_gst = onehot_gst * real_gs[..., None]
  scores_gs = jnp.asarray(step_scores_gs, jnp.float32)
  reward_gt = jnp.einsum("gst,gs->gt", onehot_gst, scores_gs) * mask_gt
  end_gt = (onehot_gst.sum(1) > 0) & mask_gt
  return reward_gt, end_gt


def loss_mask(mask_gt, valid_g=None) -> jax.Array:
  """float32 [g, t]: `mask_gt * valid_g[:, None]`, the mask losses should use."""
  mask_gt = jnp.asarray(mask_gt, jnp.float32)
  if valid_g is None:
    return mask_gt
  return mask_gt * jnp.asarray(valid_g, jnp.float32)[:, None]


def _masks(inputs: AdvantageInputs) -> tuple[jax.Array, jax.Array]:
  mask_gt = jnp.asarray(inputs.mask_gt, jnp.float32)
  if inputs.valid_g is None:
    valid_g = jnp.ones(mask_gt.shape[:1], jnp.float32)
  else:
    valid_g = jnp.asarray(inputs.valid_g, jnp.float32)
  return mask_gt, valid_g


def _token_rewards(inputs: AdvantageInputs, mask_gt: jax.Array) -> jax.Array:
  """r_gt = token_reward_gt * mask + reward_g on the last real token of each row."""
  t = mask_gt.shape[1]
  # Position of the last real token; rows with no real token get no outcome reward.
  last_g = jnp.argmax(mask_gt * jnp.arange(1, t + 1), axis=1)
  last_gt = jax.nn.one_hot(last_g, t, dtype=jnp.float32) * mask_gt
  r_gt = jnp.asarray(inputs.reward_g, jnp.float32)[:, None] * last_gt
  if inputs.token_reward_gt is not None:
    r_gt = r_gt + jnp.asarray(inputs.token_reward_gt, jnp.float32) * mask_gt
  return r_gt


def _no_token_rewards(inputs: AdvantageInputs, name: str) -> None:
  if inputs.token_reward_gt is not None:
    raise ValueError(
      f"Advantage estimator {name!r} uses outcome rewards only but token_reward_gt was given; "
      "use 'gae' or 'reinforce_pp' for per-token rewards, or drop token_reward_gt."
    )


def _reverse_gae(r_gt, v_gt, bootstrap_g, mask_gt, gamma: float, lam: float):
  """Masked reverse scan (purejaxrl style) returning the lambda-advantages [g, t].

  Real tokens:   delta_t = r_t + gamma * V_next - V_t,  A_t = delta_t + gamma * lam * A_next,
  where "next" is the next *real* token (masked positions pass the carry through
  unchanged) and, after the last real token, V_next = bootstrap_g, A_next = 0.
  """

  def step(carry, xs):
    adv_next_g, v_next_g = carry
    r_g, v_g, m_g = xs
    delta_g = r_g + gamma * v_next_g - v_g
    adv_g = delta_g + gamma * lam * adv_next_g
    keep_g = m_g > 0
    carry = (jnp.where(keep_g, adv_g, adv_next_g), jnp.where(keep_g, v_g, v_next_g))
    return carry, jnp.where(keep_g, adv_g, 0.0)

  init = (jnp.zeros_like(bootstrap_g), bootstrap_g)
  xs = (r_gt.T, v_gt.T, mask_gt.T)
  _, adv_tg = jax.lax.scan(step, init, xs, reverse=True)
  return adv_tg.T


@ADVANTAGES.register("gae")
def gae(
  inputs: AdvantageInputs,
  *,
  group_size: int = 1,
  gamma: float = 1.0,
  lam: float = 0.95,
  lambda_critic: float | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Generalised advantage estimation (Schulman et al. 2016) over completion tokens.

    r_t = token_reward_t + [t is the last real token] * reward
    delta_t = r_t + gamma * V_{t+1} - V_t
    A_t = sum_k (gamma * lam)^k delta_{t+k}            (policy advantages)
    R_t = V_t + sum_k (gamma * lam_c)^k delta_{t+k}    (value targets, lam_c = lambda_critic or lam)

  After the last real token V_{t+1} is the bootstrap value: 0 for rows that
  emitted EOS (termination), and V_last, the value of the last real token, for
  rows cut at the length limit (`finished_eos_g` False: truncation). V_last
  stands in for the value of the unseen next state, which the trainer never
  computes; it keeps the critic from learning that the length limit ends the
  episode. Masked positions are skipped (the recursion links consecutive real
  tokens). `group_size` is unused (accepted for the uniform signature).

  Returns:
    (advantages_gt, returns_gt), both 0 at masked positions and on invalid rows.
  """
  del group_size
  if inputs.values_gt is None:
    raise ValueError(
      "Advantage estimator 'gae' needs values_gt from a value model; "
      "set values_gt or pick a critic-free estimator such as 'grpo'."
    )
  mask_gt, valid_g = _masks(inputs)
  r_gt = _token_rewards(inputs, mask_gt)
  v_gt = jnp.asarray(inputs.values_gt, jnp.float32) * mask_gt
  t = mask_gt.shape[1]
  last_g = jnp.argmax(mask_gt * jnp.arange(1, t + 1), axis=1)
  v_last_g = jnp.take_along_axis(v_gt, last_g[:, None], axis=1)[:, 0]
  if inputs.finished_eos_g is None:
    bootstrap_g = jnp.zeros_like(v_last_g)
  else:
    bootstrap_g = jnp.where(jnp.asarray(inputs.finished_eos_g, bool), 0.0, v_last_g)
  adv_gt = _reverse_gae(r_gt, v_gt, bootstrap_g, mask_gt, gamma, lam)
  if lambda_critic is None or lambda_critic == lam:
    adv_critic_gt = adv_gt
  else:
    adv_critic_gt = _reverse_gae(r_gt, v_gt, bootstrap_g, mask_gt, gamma, lambda_critic)
  keep_gt = mask_gt * valid_g[:, None]
  return adv_gt * keep_gt, (adv_critic_gt + v_gt) * keep_gt


def _group_stats(x_g, valid_g, group_size: int, ddof: int):
  """Masked per-group count, mean and std, each broadcast back to [g]."""
  x_bk = (x_g * valid_g).reshape(-1, group_size)
  v_bk = valid_g.reshape(-1, group_size)
  n_b = v_bk.sum(1)
  mean_b = x_bk.sum(1) / jnp.maximum(n_b, 1.0)
  sq_b = (jnp.square(x_bk - mean_b[:, None]) * v_bk).sum(1)
  std_b = jnp.sqrt(sq_b / jnp.maximum(n_b - ddof, 1.0))
  rep = lambda a_b: jnp.repeat(a_b, group_size)
  return rep(n_b), rep(mean_b), rep(std_b)


def _group_all_equal(x_g, valid_g, group_size: int):
  """bool [g]: the valid members of the row's group all have the same reward.

  Tested on max == min rather than std == 0: the rounding error of a float mean makes
  r - mean tiny but non-zero, and dividing by a tiny std would turn it into a signal.
  """
  x_bk = x_g.reshape(-1, group_size)
  v_bk = valid_g.reshape(-1, group_size) > 0
  hi_b = jnp.where(v_bk, x_bk, -jnp.inf).max(1)
  lo_b = jnp.where(v_bk, x_bk, jnp.inf).min(1)
  return jnp.repeat(~(hi_b > lo_b), group_size)


def _check_groups(reward_g, group_size: int) -> None:
  g = reward_g.shape[0]
  if group_size < 1 or g % group_size:
    raise ValueError(
      f"{g} generations do not split into groups of group_size={group_size}; "
      "sample a whole number of groups per prompt."
    )


def _outcome_to_tokens(a_g, inputs, mask_gt, valid_g):
  r_g = jnp.asarray(inputs.reward_g, jnp.float32)
  keep_gt = mask_gt * valid_g[:, None]
  return a_g[:, None] * keep_gt, r_g[:, None] * keep_gt


@ADVANTAGES.register("grpo")
def grpo(
  inputs: AdvantageInputs, *, group_size: int, eps: float = 1e-6, std_ddof: int = 1
) -> tuple[jax.Array, jax.Array]:
  """GRPO (Shao et al. 2024): A_i = (r_i - mean_group(r)) / (std_group(r) + eps), on every token.

  Group mean and std run over the valid generations of the group only (std with
  `std_ddof`, 1 = unbiased as in the reference implementations). Groups whose valid
  rewards are all equal, or have fewer than two valid members, get A = 0 exactly.

  Returns:
    (advantages_gt, returns_gt) with returns_gt = r_i on the row's real tokens.
  """
  _no_token_rewards(inputs, "grpo")
  mask_gt, valid_g = _masks(inputs)
  r_g = jnp.asarray(inputs.reward_g, jnp.float32)
  _check_groups(r_g, group_size)
  _, mean_g, std_g = _group_stats(r_g, valid_g, group_size, std_ddof)
  a_g = (r_g - mean_g) / (std_g + eps) * valid_g
  a_g = jnp.where(_group_all_equal(r_g, valid_g, group_size), 0.0, a_g)
  return _outcome_to_tokens(a_g, inputs, mask_gt, valid_g)


@ADVANTAGES.register("grpo_process")
def grpo_process(
  inputs: AdvantageInputs,
  *,
  group_size: int,
  eps: float = 1e-6,
  std_ddof: int = 1,
  outcome_weight: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
  """GRPO with process supervision (Shao et al. 2024, DeepSeekMath section 4.1.3).

  Every step reward of a group (all steps of all its valid generations) is normalised by
  the group's mean and std over those steps, r~ = (r - mean) / (std + eps); a token's
  advantage is the sum of the normalised rewards of the steps ending at or after it:

    A_t = sum_{k : end_k >= t} r~_k        (+ outcome_weight * the outcome GRPO advantage)

  `outcome_weight` > 0 mixes in the row's outcome advantage (`grpo` on `reward_g`) on
  every token: an outcome + process mixture; 0 is DeepSeekMath's process-only form.
  Groups whose step rewards are all equal (or hold no step) get no process advantage.

  Returns:
    (advantages_gt, returns_gt) with returns_gt the raw step reward-to-go
    sum_{k : end_k >= t} r_k (for logging), both 0 on masked tokens and invalid rows.
  """
  if inputs.step_reward_gt is None or inputs.step_end_gt is None:
    raise ValueError(
      "Advantage estimator 'grpo_process' needs step_reward_gt and step_end_gt (step "
      "rewards on step-final tokens, `place_step_rewards`); use 'grpo' for outcome only."
    )
  _no_token_rewards(inputs, "grpo_process")
  mask_gt, valid_g = _masks(inputs)
  _check_groups(jnp.asarray(inputs.reward_g), group_size)
  t = mask_gt.shape[1]
  end_gt = jnp.asarray(inputs.step_end_gt, jnp.float32) * mask_gt * valid_g[:, None]
  r_gt = jnp.asarray(inputs.step_reward_gt, jnp.float32) * end_gt
  # Group statistics over every step of the group: [groups, members * t] views.
  end_bk = end_gt.reshape(-1, group_size * t)
  r_bk = r_gt.reshape(-1, group_size * t)
  n_b = end_bk.sum(1)
  mean_b = r_bk.sum(1) / jnp.maximum(n_b, 1.0)
  var_b = (jnp.square(r_bk - mean_b[:, None]) * end_bk).sum(1) / jnp.maximum(n_b - std_ddof, 1.0)
  hi_b = jnp.where(end_bk > 0, r_bk, -jnp.inf).max(1)
  lo_b = jnp.where(end_bk > 0, r_bk, jnp.inf).min(1)
  signal_b = hi_b > lo_b  # False also for groups without steps.
  rep = lambda a_b: jnp.repeat(a_b, group_size)[:, None]  # noqa: E731
  norm_gt = jnp.where(rep(signal_b), (r_gt - rep(mean_b)) / (jnp.sqrt(rep(var_b)) + eps), 0.0)
  norm_gt = norm_gt * end_gt
  suffix = lambda x_gt: jnp.flip(jnp.cumsum(jnp.flip(x_gt, 1), axis=1), 1)  # noqa: E731
  keep_gt = mask_gt * valid_g[:, None]
  adv_gt = suffix(norm_gt) * keep_gt
  if outcome_weight:
    outcome_gt, _ = grpo(
      inputs.replace(token_reward_gt=None), group_size=group_size, eps=eps, std_ddof=std_ddof
    )
    adv_gt = adv_gt + outcome_weight * outcome_gt
  return adv_gt, suffix(r_gt) * keep_gt


@ADVANTAGES.register("dr_grpo")
def dr_grpo(inputs: AdvantageInputs, *, group_size: int) -> tuple[jax.Array, jax.Array]:
  """Dr. GRPO (Liu et al. 2025): A_i = r_i - mean_group(r), no std normalisation.

  Pair it with the `seq_mean_token_sum_norm` aggregation (constant normaliser) to
  remove GRPO's length and difficulty biases. Mean over valid members only.
  """
  _no_token_rewards(inputs, "dr_grpo")
  mask_gt, valid_g = _masks(inputs)
  r_g = jnp.asarray(inputs.reward_g, jnp.float32)
  _check_groups(r_g, group_size)
  _, mean_g, _ = _group_stats(r_g, valid_g, group_size, 0)
  a_g = jnp.where(_group_all_equal(r_g, valid_g, group_size), 0.0, (r_g - mean_g) * valid_g)
  return _outcome_to_tokens(a_g, inputs, mask_gt, valid_g)


@ADVANTAGES.register("rloo")
def rloo(inputs: AdvantageInputs, *, group_size: int) -> tuple[jax.Array, jax.Array]:
  """RLOO (Kool et al. 2019; Ahmadian et al. 2024): A_i = r_i - mean_{j != i, j valid} r_j.

  Equivalently A_i = n / (n - 1) * (r_i - mean_group(r)) with n valid members;
  A = 0 when a group has fewer than two valid members.
  """
  _no_token_rewards(inputs, "rloo")
  mask_gt, valid_g = _masks(inputs)
  r_g = jnp.asarray(inputs.reward_g, jnp.float32)
  _check_groups(r_g, group_size)
  n_g, mean_g, _ = _group_stats(r_g, valid_g, group_size, 0)
  a_g = jnp.where(n_g > 1, n_g / jnp.maximum(n_g - 1.0, 1.0) * (r_g - mean_g), 0.0) * valid_g
  a_g = jnp.where(_group_all_equal(r_g, valid_g, group_size), 0.0, a_g)
  return _outcome_to_tokens(a_g, inputs, mask_gt, valid_g)


@ADVANTAGES.register("reinforce_pp")
def reinforce_pp(
  inputs: AdvantageInputs,
  *,
  group_size: int = 1,
  gamma: float = 1.0,
  eps: float = 1e-8,
  group_baseline: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """REINFORCE++ (Hu 2025): whitened reward-to-go, whitening over the whole batch.

    r_t = token_reward_t + [t is the last real token] * (reward - b)
    G_t = sum_{k >= t} gamma^k r_{t+k}                 (over real tokens)
    A_t = (G_t - mean(G)) / (std(G) + eps)             (mean/std over all real tokens of valid rows)

  b = 0, or the valid group mean with `group_baseline=True` ("REINFORCE++-baseline").
  Under jit with a sharded batch the whitening statistics are global.

  Returns:
    (advantages_gt, returns_gt) with returns_gt = G_t (before whitening).
  """
  mask_gt, valid_g = _masks(inputs)
  r_g = jnp.asarray(inputs.reward_g, jnp.float32)
  if group_baseline:
    _check_groups(r_g, group_size)
    _, mean_g, _ = _group_stats(r_g, valid_g, group_size, 0)
    inputs = inputs.replace(reward_g=r_g - mean_g)
  r_gt = _token_rewards(inputs, mask_gt)
  zeros_g = jnp.zeros(mask_gt.shape[:1], jnp.float32)
  # GAE with V = 0 and lambda = 1 is the discounted reward-to-go.
  ret_gt = _reverse_gae(r_gt, jnp.zeros_like(r_gt), zeros_g, mask_gt, gamma, 1.0)
  keep_gt = mask_gt * valid_g[:, None]
  n = jnp.maximum(keep_gt.sum(), 1.0)
  mean = (ret_gt * keep_gt).sum() / n
  std = jnp.sqrt((jnp.square(ret_gt - mean) * keep_gt).sum() / n)
  adv_gt = (ret_gt - mean) / (std + eps) * keep_gt
  return adv_gt, ret_gt * keep_gt
