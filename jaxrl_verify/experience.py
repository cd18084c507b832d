"""One iteration's experience: sample, verify on the host pool, score on device.

Order matters for speed: the sampler's output is decoded and every completion is
submitted to the verifier pool at once; the reference logprobs and critic values
are then dispatched to the device (asynchronously) and computed while the pool
works; only then does the host wait for verdicts. Rewards go through the jitted
advantage estimator into a `TrainBatch`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrl_verify import distributed
from jaxrl_verify.models import scoring
from jaxrl_verify.rl import advantages as advantages_lib
from jaxrl_verify.rl import kl, shaping, update
from jaxrl_verify.sampler import SamplingParams
from jaxrl_verify.types import PromptBatch


@dataclasses.dataclass(frozen=True)
class ExperienceConfig:
  """Static choices of how experience becomes a TrainBatch."""

  group_size: int
  advantage: str
  advantage_hparams: tuple[tuple[str, Any], ...] = ()
  needs_ref: bool = False
  kl_in_reward: bool = False
  kl_coef: float = 0.0
  kl_estimator: str = "k3"
  failure_policy: str = "mask"
  overlong_buffer: int = 0
  overlong_penalty: float = 1.0
  mask_truncated: bool = False


class DeviceScorer:
  """Jitted device computations of the experience stage (compiled once per shape)."""

  def __init__(self, policy_graphdef, value_graphdef, cfg: ExperienceConfig):
    self.cfg = cfg

    @jax.jit
    def ref_logp(ref_state, prompt_gp, prompt_mask_gp, completion_gt, mask_gt):
      model = nnx.merge(policy_graphdef, ref_state)
      # Rows come in groups of `group_size` sharing a prompt: encode each prompt once.
      return scoring.completion_logprobs(
        model,
        prompt_gp,
        prompt_mask_gp,
        completion_gt,
        mask_gt,
        prompt_repeats=cfg.group_size,
      )

    @jax.jit
    def values(value_state, prompt_gp, prompt_mask_gp, completion_gt, mask_gt):
      model = nnx.merge(value_graphdef, value_state)
      return update.critic_values(
        model, prompt_gp, prompt_mask_gp, completion_gt, mask_gt, prompt_repeats=cfg.group_size
      )

    estimator = functools.partial(
      advantages_lib.ADVANTAGES.get(cfg.advantage),
      group_size=cfg.group_size,
      **dict(cfg.advantage_hparams),
    )

    @jax.jit
    def advantages(reward_g, valid_g, mask_gt, logp_gt, ref_logp_gt, values_gt, finished_g):
      token_reward_gt = None
      if cfg.kl_in_reward:
        token_reward_gt = kl.kl_penalty_rewards(
          logp_gt, ref_logp_gt, mask_gt, beta=cfg.kl_coef, estimator=cfg.kl_estimator
        )
      inputs = advantages_lib.AdvantageInputs(
        reward_g=reward_g,
        mask_gt=mask_gt,
        valid_g=valid_g,
        token_reward_gt=token_reward_gt,
        values_gt=values_gt if value_graphdef is not None else None,
        finished_eos_g=finished_g,
      )
      return estimator(inputs)

    self.ref_logp, self.values, self.advantages = ref_logp, values, advantages


def collect(state: update.TrainState, prompts: PromptBatch, rng, **kwargs):
  """Samples a group per prompt, verifies, and assembles the TrainBatch.

  Keyword arguments: `sampler`, `sampling`, `scorer`, `pool`, `verifier`,
  `tokenizer`, `mesh` (see `_collect_once`).

  Returns:
    (batch, metrics, completions): `completions` are this host's decoded texts.
  """
  batch, metrics, texts, _, _ = _collect_once(state, prompts, rng, **kwargs)
  return batch, metrics, texts


def collect_dynamic(state: update.TrainState, prompt_iter, rng, *, max_rounds: int, **kwargs):
  """DAPO dynamic sampling: keep only groups whose rewards differ, refill, repeat.

  Samples rounds of prompts from `prompt_iter` until this host holds as many
  informative groups (rewards not all equal) as one round has, or `max_rounds`
  rounds ran; then tops the batch up with uninformative groups (their advantages
  are 0, so they add no gradient). Single-process only: hosts would need the same
  number of rounds.

  Returns:
    (batch, metrics, completions) as `collect`, with `dynamic/rounds`,
    `dynamic/kept_frac` and `dynamic/topped_up_groups`; the other metrics describe
    the first round (what the policy did on fresh prompts).
  """
  if jax.process_count() > 1:
    raise ValueError(
      "config.algo.dynamic_sampling is single-process only for now; turn it off for "
      "multi-host runs."
    )
  mesh, group = kwargs["mesh"], kwargs["scorer"].cfg.group_size
  kept: shaping.GroupAccumulator | None = None
  spare: shaping.GroupAccumulator | None = None
  first_metrics, first_texts = None, None
  for _ in range(max_rounds):
    rng, round_rng = jax.random.split(rng)
    batch, metrics, texts, reward_g, valid_g = _collect_once(
      state, next(prompt_iter), round_rng, **kwargs
    )
    host = dict(vars(distributed.to_local(batch, mesh)))
    num_groups = len(reward_g) // group
    if kept is None:
      kept = shaping.GroupAccumulator(num_groups, group)
      spare = shaping.GroupAccumulator(num_groups, group)
      first_metrics, first_texts = metrics, texts
    keep_b = shaping.keep_groups(reward_g, valid_g, group_size=group)
    kept.add(keep_b, **host)
    if not spare.full:
      spare.add(~keep_b, **host)
    if kept.full:
      break
  rounds, seen = kept.rounds, kept.seen_groups
  topped_up = max(kept.target_groups - kept.num_groups, 0)
  if topped_up:
    # Every round adds each of its groups to `kept` or `spare`, so `spare` holds at
    # least the groups missing from `kept`.
    spare.target_groups = topped_up
    kept.add(np.ones(topped_up, bool), **spare.take())
  fields = kept.take()
  batch = update.TrainBatch(**distributed.to_global(fields, mesh))
  first_metrics.update(
    {
      "dynamic/rounds": float(rounds),
      "dynamic/kept_frac": (kept.target_groups - topped_up) / max(seen, 1),
      "dynamic/topped_up_groups": float(topped_up),
    }
  )
  return batch, first_metrics, first_texts


def _collect_once(
  state: update.TrainState,
  prompts: PromptBatch,
  rng,
  *,
  sampler,
  sampling: SamplingParams,
  scorer: DeviceScorer,
  pool,
  verifier: str,
  tokenizer,
  mesh,
) -> tuple[update.TrainBatch, dict[str, float], list[str], np.ndarray, np.ndarray]:
  """One round: (batch, metrics, texts, host reward_g, host valid_g)."""
  cfg = scorer.cfg
  group = cfg.group_size
  t0 = time.perf_counter()
  prompt_gp = np.repeat(prompts.tokens_bp, group, axis=0)
  prompt_mask_gp = np.repeat(prompts.mask_bp, group, axis=0)
  prompt_gp, prompt_mask_gp = distributed.to_global((prompt_gp, prompt_mask_gp), mesh)
  rollout = sampler.generate(
    state.policy, prompt_gp, prompt_mask_gp, rng, sampling, prompt_repeats=group
  )
  tokens_gt, mask_gt, finished_g = distributed.to_local(
    (rollout.tokens_gt, rollout.mask_gt, rollout.finished_eos_g), mesh
  )
  t_sample = time.perf_counter() - t0

  # Verification starts now, on the host pool ...
  t1 = time.perf_counter()
  texts = tokenizer.decode_batch(tokens_gt, mask_gt)
  tickets = [
    pool.submit(verifier, text, prompts.references[i // group], prompts.fields[i // group])
    for i, text in enumerate(texts)
  ]
  # ... while the device computes reference logprobs and values (async dispatch).
  zeros_gt = jnp.zeros_like(rollout.logp_gt)
  ref_logp_gt = (
    scorer.ref_logp(state.ref, prompt_gp, prompt_mask_gp, rollout.tokens_gt, rollout.mask_gt)
    if cfg.needs_ref
    else zeros_gt
  )
  values_gt = (
    scorer.values(state.value, prompt_gp, prompt_mask_gp, rollout.tokens_gt, rollout.mask_gt)
    if state.value is not None
    else zeros_gt
  )
  verdicts = pool.results(tickets)
  t_verify = time.perf_counter() - t1

  reward_g, valid_g = shaping.verdict_rewards(
    [v.status for v in verdicts], [v.reward for v in verdicts], policy=cfg.failure_policy
  )
  length_g = mask_gt.sum(axis=1)
  if cfg.overlong_buffer:
    reward_g = reward_g + np.asarray(
      shaping.overlong_penalty(
        length_g,
        max_len=mask_gt.shape[1],
        cache_len=cfg.overlong_buffer,
        factor=cfg.overlong_penalty,
      )
    )
  valid_g = shaping.overlong_filter(valid_g, finished_g, enabled=cfg.mask_truncated)
  reward_host_g, valid_host_g = reward_g.astype(np.float32), np.asarray(valid_g, bool)
  reward_g, valid_g = distributed.to_global((reward_host_g, valid_host_g), mesh)
  advantages_gt, returns_gt = scorer.advantages(
    reward_g,
    valid_g,
    rollout.mask_gt,
    rollout.logp_gt,
    ref_logp_gt,
    values_gt,
    rollout.finished_eos_g,
  )
  loss_mask_gt = advantages_lib.loss_mask(rollout.mask_gt, valid_g)
  batch = update.TrainBatch(
    prompt_gp=prompt_gp,
    prompt_mask_gp=prompt_mask_gp,
    completion_gt=rollout.tokens_gt,
    completion_mask_gt=rollout.mask_gt,
    mask_gt=loss_mask_gt,
    logp_old_gt=rollout.logp_gt,
    sample_logp_gt=rollout.sample_logp_gt,
    ref_logp_gt=ref_logp_gt,
    advantages_gt=advantages_gt,
    returns_gt=returns_gt,
    values_old_gt=values_gt,
  )
  metrics = _metrics(verdicts, length_g, finished_g, t_sample, t_verify)
  return batch, metrics, texts, reward_host_g, valid_host_g


_STATUSES = ("ok", "wrong", "invalid", "timeout", "error")


def _metrics(verdicts, length_g, finished_g, t_sample, t_verify) -> dict[str, float]:
  """Metrics of the global batch (reward, accuracy, lengths, statuses); a collective.

  Every process's generations are gathered first (one all-gather of a [g, columns] table), so
  the numbers are the same as a single process holding the whole batch would log.
  """
  table_gc = np.stack(
    [
      np.array([v.reward for v in verdicts], np.float32),
      np.array([_STATUSES.index(v.status) for v in verdicts], np.float32),
      np.array([v.latency_s for v in verdicts], np.float32),
      np.asarray(length_g, np.float32),
      np.asarray(finished_g, np.float32),
      # Held-out correctness (code tasks with hidden tests), NaN where not measured.
      np.array([(v.extras or {}).get("hidden_reward", np.nan) for v in verdicts], np.float32),
    ],
    axis=1,
  )
  columns = distributed.gather_rows(table_gc).T
  reward_g, status_g, latencies, length_g, finished_g, hidden_g = columns
  n = max(len(status_g), 1)
  counts = collections.Counter(_STATUSES[int(i)] for i in status_g)
  latencies = latencies if len(latencies) else np.zeros(1)
  m = {
    "reward/mean": float(np.mean(reward_g)) if len(reward_g) else 0.0,
    "accuracy": counts["ok"] / n,
    **({"reward/hidden_mean": float(np.nanmean(hidden_g))} if np.isfinite(hidden_g).any() else {}),
    "response_length/mean": float(np.mean(length_g)),
    "response_length/max": float(np.max(length_g)),
    "response_length/truncated_frac": float(1.0 - np.mean(finished_g)),
    "time/sample": t_sample,
    "time/verify": t_verify,
    "tokens_per_s": float(np.sum(length_g)) / max(t_sample, 1e-9),
    "verify/latency_p50_s": float(np.percentile(latencies, 50)),
    "verify/latency_p99_s": float(np.percentile(latencies, 99)),
  }
  for status in _STATUSES:
    m[f"verify/frac_{status}"] = counts[status] / n
  return m
