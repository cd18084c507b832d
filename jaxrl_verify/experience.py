"""One iteration's experience, in typed stages (see `Experience`):

  sample -> Samples -> reward source start -> device scores (overlapped) -> Rewards
         -> advantages (jit) -> TrainBatch

Rewards come from `rewards` (the host verifier pool today; device reward models plug in
as further sources of the same stage).
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
from jaxrl_verify import rewards as rewards_lib
from jaxrl_verify.models import scoring
from jaxrl_verify.rl import advantages as advantages_lib
from jaxrl_verify.rl import kl, shaping, update
from jaxrl_verify.sampler import SamplingParams
from jaxrl_verify.types import PromptBatch, Rollout


@dataclasses.dataclass(frozen=True)
class ExperienceConfig:
  """Static choices of how experience becomes a TrainBatch (`setup_lib.experience_config`).

  Attributes:
    group_size: generations sampled per prompt (consecutive rows).
    verifier: the task's registered verifier name (the host reward source).
    advantage: an `rl.advantages.ADVANTAGES` name.
    advantage_hparams: (name, value) pairs it declares (`ADVANTAGES.hparams(advantage)`).
    needs_ref: compute reference-policy logprobs (a KL term in the loss or the reward).
    kl_in_reward: put `-kl_coef * KL` into per-token rewards (gae/reinforce_pp).
    kl_coef: the KL weight.
    kl_estimator: a `kl.KL_ESTIMATORS` name.
    failure_policy: verifier timeouts/errors: `mask` out of the loss, or `zero` reward.
    overlong_buffer: DAPO soft overlong punishment over the last N tokens; 0: off.
    overlong_penalty: its factor.
    mask_truncated: exclude rows that hit the length limit from the loss.
  """

  group_size: int
  advantage: str
  verifier: str = "math"
  advantage_hparams: tuple[tuple[str, Any], ...] = ()
  needs_ref: bool = False
  kl_in_reward: bool = False
  kl_coef: float = 0.0
  kl_estimator: str = "k3"
  failure_policy: str = "mask"
  overlong_buffer: int = 0
  overlong_penalty: float = 1.0
  mask_truncated: bool = False

  @property
  def shaping(self) -> rewards_lib.Shaping:
    return rewards_lib.Shaping(
      self.failure_policy, self.overlong_buffer, self.overlong_penalty, self.mask_truncated
    )


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
      advantages_lib.ADVANTAGES.bind(cfg.advantage, dict(cfg.advantage_hparams)),
      group_size=cfg.group_size,
    )

    @jax.jit
    def advantages(
      reward_g, valid_g, mask_gt, logp_gt, ref_logp_gt, values_gt, finished_g, steps=None
    ):
      """`steps`: None, or (step_reward_gs, step_end_gs) process rewards (a PRM's): the
      step input of `grpo_process`, per-token rewards for every other estimator."""
      token_reward_gt = step_reward_gt = step_end_gt = None
      if cfg.kl_in_reward:
        token_reward_gt = kl.kl_penalty_rewards(
          logp_gt, ref_logp_gt, mask_gt, beta=cfg.kl_coef, estimator=cfg.kl_estimator
        )
      if steps is not None:
        step_reward_gt, step_end_gt = advantages_lib.place_step_rewards(steps[1], steps[0], mask_gt)
        if cfg.advantage != "grpo_process":  # Math-Shepherd: step rewards as token rewards.
          token_reward_gt = step_reward_gt + (0.0 if token_reward_gt is None else token_reward_gt)
          step_reward_gt = step_end_gt = None
      inputs = advantages_lib.AdvantageInputs(
        reward_g=reward_g,
        mask_gt=mask_gt,
        valid_g=valid_g,
        token_reward_gt=token_reward_gt,
        values_gt=values_gt if value_graphdef is not None else None,
        finished_eos_g=finished_g,
        step_reward_gt=step_reward_gt,
        step_end_gt=step_end_gt,
      )
      return estimator(inputs)

    @jax.jit
    def kl_from_init(logp_gt, ref_logp_gt, mask_gt):
      # KL(policy || initial policy) of whole completions, nats: the k1 estimate on the
      # rollout's own samples (unbiased at sampling temperature 1), Gao et al.'s x-axis.
      return jnp.mean(jnp.sum(jnp.where(mask_gt, logp_gt - ref_logp_gt, 0.0), axis=1))

    self.ref_logp, self.values, self.advantages = ref_logp, values, advantages
    self.kl_from_init = kl_from_init


@dataclasses.dataclass(frozen=True)
class Samples:
  """A round's rollout: each prompt repeated `group_size` times and sampled.

  Attributes:
    prompt_gp: int32 [g, p] global device array, prompt row i // group_size repeated.
    prompt_mask_gp: bool [g, p] its mask.
    rollout: the sampler's `Rollout` (global device arrays).
    completions: this process's rows on the host (decoded texts, lengths, finish flags),
      what the reward sources read.
    sample_s: seconds spent sampling, copying this process's rows to the host and decoding.
  """

  prompt_gp: jax.Array
  prompt_mask_gp: jax.Array
  rollout: Rollout
  completions: rewards_lib.Completions
  sample_s: float


@dataclasses.dataclass(frozen=True)
class DeviceScores:
  """Device forwards over a round's samples (float32 [g, t]; zeros where unused).

  Attributes:
    ref_logp_gt: reference-policy logprobs of the sampled tokens.
    values_gt: critic values V(s_t).
  """

  ref_logp_gt: jax.Array
  values_gt: jax.Array


@dataclasses.dataclass(frozen=True)
class Round:
  """One round of experience: the batch to train on and what produced it.

  Attributes:
    batch: the TrainBatch (global device arrays).
    samples: the round's rollout.
    rewards: this process's rewards and verdicts.
    metrics: global reward, accuracy, length, status and timing metrics.
  """

  batch: update.TrainBatch
  samples: Samples
  rewards: rewards_lib.Rewards
  metrics: dict[str, float]


class Experience:
  """Collects experience for the trainer: sample -> rewards (overlapped with device scores)
  -> advantages -> batch.

  Order matters for speed. The sampler's rows are decoded and handed to the reward
  source, which starts at once (the host pool checks every completion in its worker
  processes); the reference logprobs and critic values are then dispatched to the device
  (asynchronously) and computed while the pool works; only then does the host wait for
  the rewards. `time/verify` is that wait plus the submission, i.e. what verification
  costs the step beyond the overlapped device work.

  Args:
    cfg: the static experience choices.
    sampler, sampling: the jitted sampler and its distribution.
    pool: this host's verifier pool (the reward source).
    tokenizer: decodes completions for the verifiers.
    mesh: the device mesh (global arrays are sharded over its batch axes).
    policy_graphdef, value_graphdef: the models' graph definitions (value None without a critic).
    reward_source: what rewards the policy; default the verifier pool.
  """

  def __init__(
    self,
    cfg: ExperienceConfig,
    *,
    sampler,
    sampling: SamplingParams,
    pool,
    tokenizer,
    mesh,
    policy_graphdef,
    value_graphdef,
    reward_source: rewards_lib.RewardSource | None = None,
  ):
    self.cfg, self.sampler, self.sampling = cfg, sampler, sampling
    self.tokenizer, self.mesh = tokenizer, mesh
    self.scorer = DeviceScorer(policy_graphdef, value_graphdef, cfg)
    self.reward_source: rewards_lib.RewardSource = reward_source or rewards_lib.VerifierRewards(
      pool, cfg.verifier, cfg.shaping
    )

  # ------------------------------------------------------------------- the stages

  def sample(self, state: update.TrainState, prompts: PromptBatch, rng) -> Samples:
    """Samples a group per prompt (each prompt prefilled once) and decodes this host's rows."""
    group = self.cfg.group_size
    t0 = time.perf_counter()
    prompt_gp = np.repeat(prompts.tokens_bp, group, axis=0)
    prompt_mask_gp = np.repeat(prompts.mask_bp, group, axis=0)
    prompt_gp, prompt_mask_gp = distributed.to_global((prompt_gp, prompt_mask_gp), self.mesh)
    rollout = self.sampler.generate(
      state.policy, prompt_gp, prompt_mask_gp, rng, self.sampling, prompt_repeats=group
    )
    tokens_gt, mask_gt, finished_g = distributed.to_local(
      (rollout.tokens_gt, rollout.mask_gt, rollout.finished_eos_g), self.mesh
    )
    sample_s = time.perf_counter() - t0
    completions = rewards_lib.Completions(
      prompts=prompts,
      texts=self.tokenizer.decode_batch(tokens_gt, mask_gt),
      length_g=mask_gt.sum(axis=1),
      finished_g=np.asarray(finished_g, bool),
      max_new_tokens=mask_gt.shape[1],
      group_size=group,
      tokens_gt=np.asarray(tokens_gt),
    )
    return Samples(prompt_gp, prompt_mask_gp, rollout, completions, sample_s)

  def score_on_device(self, state: update.TrainState, samples: Samples) -> DeviceScores:
    """Dispatches the reference and critic forwards (asynchronous: returns at once)."""
    r = samples.rollout
    args = (samples.prompt_gp, samples.prompt_mask_gp, r.tokens_gt, r.mask_gt)
    zeros_gt = jnp.zeros_like(r.logp_gt)
    ref_logp_gt = self.scorer.ref_logp(state.ref, *args) if self.cfg.needs_ref else zeros_gt
    values_gt = self.scorer.values(state.value, *args) if state.value is not None else zeros_gt
    return DeviceScores(ref_logp_gt, values_gt)

  def assemble(
    self, samples: Samples, scores: DeviceScores, rewards: rewards_lib.Rewards
  ) -> update.TrainBatch:
    """Advantages (jitted, global) and the TrainBatch."""
    r = samples.rollout
    reward_g, valid_g = distributed.to_global((rewards.reward_g, rewards.valid_g), self.mesh)
    steps = None
    if rewards.step_end_gs is not None:
      steps = distributed.to_global((rewards.step_reward_gs, rewards.step_end_gs), self.mesh)
    advantages_gt, returns_gt = self.scorer.advantages(
      reward_g,
      valid_g,
      r.mask_gt,
      r.logp_gt,
      scores.ref_logp_gt,
      scores.values_gt,
      r.finished_eos_g,
      steps,
    )
    return update.TrainBatch(
      prompt_gp=samples.prompt_gp,
      prompt_mask_gp=samples.prompt_mask_gp,
      completion_gt=r.tokens_gt,
      completion_mask_gt=r.mask_gt,
      mask_gt=advantages_lib.loss_mask(r.mask_gt, valid_g),
      logp_old_gt=r.logp_gt,
      sample_logp_gt=r.sample_logp_gt,
      ref_logp_gt=scores.ref_logp_gt,
      advantages_gt=advantages_gt,
      returns_gt=returns_gt,
      values_old_gt=scores.values_gt,
    )

  def collect(self, state: update.TrainState, prompts: PromptBatch, rng) -> Round:
    """One round on `prompts`: the stages in order, verification overlapping the device
    forwards; the batch, its rollout, rewards and metrics."""
    samples = self.sample(state, prompts, rng)
    t0 = time.perf_counter()
    pending = self.reward_source.start(samples.completions)  # The host pool starts ...
    scores = self.score_on_device(state, samples)  # ... while the device scores.
    rewards = self.reward_source.finish(pending, samples.completions)
    verify_s = time.perf_counter() - t0
    batch = self.assemble(samples, scores, rewards)
    metrics = round_metrics(samples.completions, rewards, samples.sample_s, verify_s)
    if self.cfg.needs_ref:
      r = samples.rollout
      metrics["kl_from_init"] = float(
        self.scorer.kl_from_init(r.logp_gt, scores.ref_logp_gt, r.mask_gt)
      )
    return Round(batch, samples, rewards, metrics)

  # ------------------------------------------------------------------- dynamic sampling

  def collect_dynamic(
    self, state: update.TrainState, prompt_iter, rng, *, max_rounds: int
  ) -> tuple[update.TrainBatch, dict[str, float]]:
    """DAPO dynamic sampling: keep only groups whose rewards differ, refill, repeat.

    Samples rounds of prompts from `prompt_iter` until this host holds as many
    informative groups (rewards not all equal) as one round has, or `max_rounds`
    rounds ran; then tops the batch up with uninformative groups (their advantages
    are 0, so they add no gradient). Single-process only: hosts would need the same
    number of rounds.

    Returns:
      (batch, metrics): metrics describe the first round (what the policy did on fresh
      prompts), plus `dynamic/rounds`, `dynamic/kept_frac`, `dynamic/topped_up_groups`.
    """
    if jax.process_count() > 1:
      raise ValueError(
        "config.algo.dynamic_sampling is single-process only for now; turn it off for "
        "multi-host runs."
      )
    group = self.cfg.group_size
    kept: shaping.GroupAccumulator | None = None
    spare: shaping.GroupAccumulator | None = None
    first_metrics = None
    for _ in range(max_rounds):
      rng, round_rng = jax.random.split(rng)
      one = self.collect(state, next(prompt_iter), round_rng)
      host = dict(vars(distributed.to_local(one.batch, self.mesh)))
      num_groups = len(one.rewards.reward_g) // group
      if kept is None:
        kept = shaping.GroupAccumulator(num_groups, group)
        spare = shaping.GroupAccumulator(num_groups, group)
        first_metrics = one.metrics
      keep_b = shaping.keep_groups(one.rewards.reward_g, one.rewards.valid_g, group_size=group)
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
    batch = update.TrainBatch(**distributed.to_global(kept.take(), self.mesh))
    first_metrics.update(
      {
        "dynamic/rounds": float(rounds),
        "dynamic/kept_frac": (kept.target_groups - topped_up) / max(seen, 1),
        "dynamic/topped_up_groups": float(topped_up),
      }
    )
    return batch, first_metrics


_STATUSES = ("ok", "wrong", "invalid", "timeout", "error")


def round_metrics(
  completions: rewards_lib.Completions, rewards: rewards_lib.Rewards, t_sample: float, t_verify
) -> dict[str, float]:
  """Metrics of the global batch (reward, accuracy, lengths, statuses); a collective.

  Every process's generations are gathered first (one all-gather of a [g, columns] table), so
  the numbers are the same as a single process holding the whole batch would log.
  """
  verdicts, length_g, finished_g = rewards.verdicts, completions.length_g, completions.finished_g
  table_gc = np.stack(
    [
      np.array([v.reward for v in verdicts], np.float32),
      np.array([_STATUSES.index(v.status) for v in verdicts], np.float32),
      np.array([v.latency_s for v in verdicts], np.float32),
      np.asarray(length_g, np.float32),
      np.asarray(finished_g, np.float32),
      # Held-out correctness (code tasks with hidden tests), NaN where not measured.
      np.array([(v.extras or {}).get("hidden_reward", np.nan) for v in verdicts], np.float32),
      # Simulator tasks: held-out prediction skill and whether the program ran at all.
      np.array([(v.extras or {}).get("prediction_reward", np.nan) for v in verdicts], np.float32),
      np.array([(v.extras or {}).get("runs", np.nan) for v in verdicts], np.float32),
    ],
    axis=1,
  )
  columns = distributed.gather_rows(table_gc).T
  reward_g, status_g, latencies, length_g, finished_g, hidden_g, predict_g, runs_g = columns
  n = max(len(status_g), 1)
  counts = collections.Counter(_STATUSES[int(i)] for i in status_g)
  latencies = latencies if len(latencies) else np.zeros(1)
  finite_g = np.isfinite(reward_g)  # A NaN reward is a failed check (`shaping`), counted.
  m = {
    "reward/mean": float(np.mean(reward_g[finite_g])) if finite_g.any() else 0.0,
    "verify/frac_nonfinite_reward": float(np.mean(~finite_g)) if len(reward_g) else 0.0,
    "accuracy": counts["ok"] / n,
    **({"reward/hidden_mean": float(np.nanmean(hidden_g))} if np.isfinite(hidden_g).any() else {}),
    **(
      {"reward/prediction_mean": float(np.nanmean(predict_g))}
      if np.isfinite(predict_g).any()
      else {}
    ),
    **({"verify/runs_frac": float(np.nanmean(runs_g))} if np.isfinite(runs_g).any() else {}),
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
  if rewards.proxy_g is not None:  # A learned reward trains: measure it against the verifier.
    table = np.stack([rewards.proxy_g, rewards.gold_g, rewards.rm_scored_g], axis=1)
    proxy_g, gold_g, scored_g = distributed.gather_rows(table.astype(np.float32)).T
    both = (scored_g > 0) & np.isfinite(gold_g)
    proxy = float(np.mean(proxy_g[both])) if both.any() else 0.0
    gold = float(np.mean(gold_g[both])) if both.any() else 0.0
    m.update(
      {
        "reward/proxy": proxy,
        "reward/gold": gold,
        "reward/hack_gap": proxy - gold,
        "reward/rm_unscored_frac": float(np.mean(scored_g == 0)),
      }
    )
  m.update(rewards.metrics or {})  # Single-process sources only (learned rewards, for now).
  return m
