"""A frozen learned reward model as a reward source, with the verifier beside it as gold.

`LearnedRewards` is a `rewards.RewardSource`. `start` submits every completion to the host
verifier pool first (the gold check: it is never trained on), then scores the completions
with the reward model (a `process.train_rm` run: ORM or PRM, its own tokenizer and step
format) on the device while the pool's processes verify; `finish` collects the verdicts.

  training reward = rm_weight * RM score + verifier_weight * verifier reward (shaped)

The RM score of a completion is `process.rm.solution_score` of its step probabilities
(`aggregate`: `last` for an ORM, `min`/`product`/`last` for a PRM). A completion with no
step scores 0; one the RM cannot read (longer than its context, more steps than it
scores) is masked out of the loss and counted (`reward/rm_unscored_frac`): a reward model
never crashes a run. `Rewards.proxy_g` and `gold_g` carry both signals so every step logs
`reward/proxy`, `reward/gold` and `reward/hack_gap` (proxy minus gold, the same 0-1 units).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxrl_verify import rewards as rewards_lib
from jaxrl_verify.process import rm, rm_setup
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.rl import shaping
from jaxrl_verify.types import PromptBatch

AGGREGATES = ("min", "product", "last")


class LearnedRewards:
  """Args:
  pool, verifier, shaping_cfg: the gold check (as `rewards.VerifierRewards`).
  rm_dir: a `python -m jaxrl_verify.process.train_rm` workdir (its newest intact step),
    restored on first use (a run may train it after building this source:
    `reward_bootstrap`).
  aggregate: how step probabilities become one score (`AGGREGATES`).
  rm_weight, verifier_weight: the training reward's mixture.
  """

  def __init__(
    self,
    pool,
    verifier: str,
    shaping_cfg: rewards_lib.Shaping,
    rm_dir: str,
    *,
    aggregate: str = "last",
    rm_weight: float = 1.0,
    verifier_weight: float = 0.0,
  ):
    if aggregate not in AGGREGATES:
      raise ValueError(f"Unknown RM aggregate {aggregate!r}; choose one of {AGGREGATES}.")
    self.gold = rewards_lib.VerifierRewards(pool, verifier, shaping_cfg)
    self.rm_dir = rm_dir
    self.aggregate, self.rm_weight, self.verifier_weight = aggregate, rm_weight, verifier_weight
    self._restored = False

  def _restore(self) -> None:
    if not self._restored:
      self.rc, self.tokenizer, graphdef, self.params = rm_setup.restore(self.rm_dir)
      self._graphdef = graphdef
      self.fmt = steps_lib.step_format(self.rc.data.step_format)
      self.score_fn = jax.jit(rm.make_score_fn(graphdef))
      self._restored = True

  def start(self, completions: rewards_lib.Completions):
    tickets = self.gold.start(completions)  # The pool verifies while the RM scores.
    proxy_g, scored_g = self.score(completions)
    return tickets, proxy_g, scored_g

  def finish(self, pending, completions: rewards_lib.Completions) -> rewards_lib.Rewards:
    tickets, proxy_g, scored_g = pending
    gold = self.gold.finish(tickets, completions)
    statuses = [v.status for v in gold.verdicts]
    gold_g = np.array([v.reward for v in gold.verdicts], np.float32)
    gold_g[[s in shaping.FAILURE_STATUSES for s in statuses]] = np.nan  # Not measured.
    reward_g = self.rm_weight * proxy_g + self.verifier_weight * gold.reward_g
    valid_g = scored_g & (gold.valid_g if self.verifier_weight else True)
    return rewards_lib.Rewards(
      reward_g.astype(np.float32),
      np.asarray(valid_g, bool),
      gold.verdicts,
      gold.wait_s,
      proxy_g=proxy_g,
      gold_g=gold_g,
      rm_scored_g=scored_g,
    )

  def score_texts(self, prompts: PromptBatch, texts: list[str]) -> np.ndarray:
    """float [b] RM scores of one completion per prompt (held-out eval), NaN where the RM
    cannot read one."""
    b = len(texts)
    completions = rewards_lib.Completions(
      prompts, texts, np.zeros(b, np.int32), np.ones(b, bool), max_new_tokens=0, group_size=1
    )
    proxy_g, scored_g = self.score(completions)
    return np.where(scored_g, proxy_g, np.nan)

  def score(self, completions: rewards_lib.Completions) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [g] RM scores, bool [g] whether the RM could read the completion)."""
    self._restore()
    g = len(completions.texts)
    proxy_g, scored_g = np.zeros(g, np.float32), np.ones(g, bool)
    max_len, max_steps = self.rc.rm.max_len, self.rc.rm.max_steps
    rows, prompts, solutions = [], [], []
    for i, text in enumerate(completions.texts):
      steps = [s.strip() for s in self.fmt.split(text) if s.strip()]
      if not steps:
        continue  # No step: score 0, a real (bad) answer.
      prompt = completions.prompts.prompts[completions.prompt_of(i)]
      too_long = rm.packed_length(self.tokenizer, prompt, steps, self.fmt) > max_len
      if too_long or len(steps) > max_steps:
        scored_g[i] = False
        continue
      rows.append(i)
      prompts.append(prompt)
      solutions.append(steps)
    if rows:
      probs = rm.score_solutions(
        self.score_fn,
        self.params,
        self.tokenizer,
        self.fmt,
        prompts,
        solutions,
        max_len=max_len,
        max_steps=max_steps,
        batch_size=self.rc.eval.batch_size,
      )
      for i, p in zip(rows, probs):
        proxy_g[i] = rm.solution_score(p, self.aggregate)
    return proxy_g, scored_g
