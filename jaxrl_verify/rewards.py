"""The reward stage: reward sources turn a round's completions into outcome rewards.

A source is started as soon as the completions exist (`start`) and finished later
(`finish`), so the device work of the experience stage runs in between. Today's source
is the host verifier pool (`VerifierRewards`): every completion is submitted at once,
the pool's processes check them while the device computes reference logprobs and
values, and `finish` blocks on the verdicts. A frozen learned reward model is a source of
the same shape (`learned_rewards.LearnedRewards`): it submits to the pool first, as the
gold check, scores on the device meanwhile, and reports both.

Rewards are this process's rows, on the host; shaping that depends only on verdicts
and lengths (failure masking, DAPO's overlong penalty and filter) happens here, before
the jitted advantage estimator.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol

import numpy as np

from jaxrl_verify.rl import shaping
from jaxrl_verify.types import PromptBatch
from jaxrl_verify.verifiers.base import Verdict


@dataclasses.dataclass(frozen=True)
class Completions:
  """What a reward source reads of a round: this process's rows, on the host.

  Attributes:
    prompts: this process's prompts (b rows); generation i answers prompt i // group_size.
    texts: the decoded completions, one per generation (g = b x group_size).
    length_g: int [g] generated tokens per row.
    finished_g: bool [g] True where the row ended with EOS (False: cut at the length limit).
    max_new_tokens: the rollout's length limit.
    group_size: generations per prompt.
    tokens_gt: int [g, t] the completions' tokens (left-aligned, `length_g` real), or None;
      what a source that places rewards on tokens reads (`learned_rewards`, steps).
  """

  prompts: PromptBatch
  texts: list[str]
  length_g: np.ndarray
  finished_g: np.ndarray
  max_new_tokens: int
  group_size: int
  tokens_gt: np.ndarray | None = None

  def prompt_of(self, i: int) -> int:
    """The prompt row that generation `i` answers."""
    return i // self.group_size


@dataclasses.dataclass(frozen=True)
class Rewards:
  """A round's outcome rewards, this process's rows (host numpy).

  Attributes:
    reward_g: float32 [g] shaped outcome reward of each generation.
    valid_g: bool [g] False where the reward cannot be trusted (masked out of the loss).
    verdicts: the verifier's verdict of each generation (status, raw reward, latency).
    wait_s: seconds the host waited for the source after the device work was dispatched.
    proxy_g: float32 [g] or None; a learned reward's score when one trains the policy
      (`learned_rewards`), logged as `reward/proxy`.
    gold_g: float32 [g] or None; the verifier's raw reward beside a learned one (NaN where
      the check failed), logged as `reward/gold`; never trained on.
    rm_scored_g: bool [g] or None; False where the reward model could not read the row.
    metrics: the source's own metrics of the round (e.g. an audited reward model's
      `verify/audited_frac`), logged with the round's.
    step_reward_gs: float32 [g, s] or None; process rewards, one per step (0 pads), placed
      on the tokens `step_end_gs` names by the advantage stage.
    step_end_gs: int32 [g, s] or None; the completion-token index ending each step, -1 pads.
  """

  reward_g: np.ndarray
  valid_g: np.ndarray
  verdicts: list[Verdict]
  wait_s: float
  proxy_g: np.ndarray | None = None
  gold_g: np.ndarray | None = None
  rm_scored_g: np.ndarray | None = None
  metrics: dict[str, float] | None = None
  step_reward_gs: np.ndarray | None = None
  step_end_gs: np.ndarray | None = None


class RewardSource(Protocol):
  """`start(completions) -> pending`, then `finish(pending, completions) -> Rewards`."""

  def start(self, completions: Completions) -> Any: ...

  def finish(self, pending: Any, completions: Completions) -> Rewards: ...


@dataclasses.dataclass(frozen=True)
class Shaping:
  """Reward shaping applied to verdicts (see `rl.shaping`).

  Attributes:
    failure_policy: `mask` (timeouts/errors out of the loss) or `zero` (reward 0, kept).
    overlong_buffer: DAPO soft overlong punishment over the last N tokens; 0: off.
    overlong_penalty: its factor.
    mask_truncated: DAPO overlong filtering (rows cut at the length limit are masked).
  """

  failure_policy: str = "mask"
  overlong_buffer: int = 0
  overlong_penalty: float = 1.0
  mask_truncated: bool = False


class VerifierRewards:
  """The host verifier pool as a reward source.

  Args:
    pool: this host's `VerifierPool`.
    verifier: the registered verifier name of the task.
    shaping: what to do with failures and overlong rows.
  """

  def __init__(self, pool, verifier: str, shaping_cfg: Shaping):
    self.pool, self.verifier, self.shaping = pool, verifier, shaping_cfg

  def start(self, completions: Completions) -> list[int]:
    """Submits every completion to the pool at once; returns the tickets."""
    p = completions.prompts
    return [
      self.pool.submit(
        self.verifier,
        text,
        p.references[completions.prompt_of(i)],
        p.fields[completions.prompt_of(i)],
      )
      for i, text in enumerate(completions.texts)
    ]

  def finish(self, tickets: list[int], completions: Completions) -> Rewards:
    """Blocks on the verdicts; shapes them into rewards and validity."""
    t0 = time.perf_counter()
    verdicts = self.pool.results(tickets)
    wait_s = time.perf_counter() - t0
    reward_g, valid_g = shape_verdicts(verdicts, completions, self.shaping)
    return Rewards(reward_g, valid_g, verdicts, wait_s)


def shape_verdicts(
  verdicts: list[Verdict], completions: Completions, cfg: Shaping
) -> tuple[np.ndarray, np.ndarray]:
  """(float32 reward_g, bool valid_g) from verdicts: failure policy, overlong penalty, filter."""
  reward_g, valid_g = shaping.verdict_rewards(
    [v.status for v in verdicts], [v.reward for v in verdicts], policy=cfg.failure_policy
  )
  if cfg.overlong_buffer:
    reward_g = reward_g + np.asarray(
      shaping.overlong_penalty(
        completions.length_g,
        max_len=completions.max_new_tokens,
        cache_len=cfg.overlong_buffer,
        factor=cfg.overlong_penalty,
      )
    )
  valid_g = shaping.overlong_filter(valid_g, completions.finished_g, enabled=cfg.mask_truncated)
  return np.asarray(reward_g, np.float32), np.asarray(valid_g, bool)
