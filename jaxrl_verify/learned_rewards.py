"""A frozen learned reward model as a reward source, with the verifier beside it as gold.

`LearnedRewards` is a `rewards.RewardSource`. `start` submits every completion to the host
verifier pool first (the gold check: it is never trained on), then scores the completions
with the reward model (a `process.train_rm` run: ORM or PRM, its own tokenizer and step
format) on the device while the pool's processes verify; `finish` collects the verdicts.

  placement "outcome": reward_g = rm_weight * RM score + verifier_weight * verifier reward
  placement "steps":   reward_g = verifier_weight * verifier reward, and every step's
                       rm_weight * PRM probability on the step's last completion token

The RM score of a completion is `process.rm.solution_score` of its step probabilities
(`aggregate`: `last` for an ORM, `min`/`product`/`last` for a PRM). With placement
`steps` (a PRM: Math-Shepherd's step-by-step PPO, DeepSeekMath's process GRPO) the
rewards carry each step's probability and the index of the completion token that ends
the step (`step_token_ends`, in the *policy's* tokens; the RM reads its own), which the
advantage stage places on the device (`rl.advantages.place_step_rewards`). A completion with no
step scores 0; one the RM cannot read (longer than its context, more steps than it
scores) is masked out of the loss and counted (`reward/rm_unscored_frac`): a reward model
never crashes a run. `Rewards.proxy_g` and `gold_g` carry both signals so every step logs
`reward/proxy`, `reward/gold` and `reward/hack_gap` (proxy minus gold, the same 0-1 units).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxrl_verify import rewards as rewards_lib
from jaxrl_verify.process import red_team, rm, rm_setup
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.rl import shaping
from jaxrl_verify.types import PromptBatch

AGGREGATES = ("min", "product", "last")
PLACEMENTS = ("outcome", "steps")
COMBINES = ("judge", "min", "mean_std")


def combine_scores(members_mg: np.ndarray, how: str, k: float = 1.0) -> np.ndarray:
  """float32 [g] training scores from [m, g] member scores (the optimised RM first, then
  the independent ones): `judge` the first alone (the others only measure), `min` the
  pessimistic minimum, `mean_std` mean minus k times the std across members (ddof 0)."""
  if how == "judge":
    return members_mg[0]
  if how == "min":
    return members_mg.min(0)
  if how == "mean_std":
    return members_mg.mean(0) - k * members_mg.std(0)
  raise ValueError(f"Unknown RM combination {how!r}; choose one of {COMBINES}.")


def red_team_metrics(
  score_texts, batch: PromptBatch, honest: list[str], adversarial: dict[str, list[str]]
) -> dict[str, float]:
  """A learned reward's scores of fixed attacks against honest solutions (`process.red_team`).

  Args:
    score_texts: `(PromptBatch, texts) -> float [b]` (`LearnedRewards.score_texts`).
    batch: the b held-out prompts; honest, adversarial[kind]: b completion texts each.

  Returns:
    `eval/red_team/<kind>`: the fraction of problems whose honest solution outscores the
    attack (ties half); `eval/red_team/separated_kinds`: the fraction of kinds where every
    honest solution outscores every attack (the bar for a robust RM: 1);
    `eval/red_team/honest` and `eval/red_team/adversarial`: mean scores. A text the RM
    cannot read scores 0, as a completion with no step does in training.
  """

  def scores(texts):
    return np.nan_to_num(np.asarray(score_texts(batch, texts), np.float64), nan=0.0)

  report = red_team.score_against_honest(
    scores(honest), {k: scores(v) for k, v in adversarial.items()}
  )
  out = {f"eval/red_team/{k}": r["honest_wins"] for k, r in report.items()}
  out["eval/red_team/separated_kinds"] = float(
    np.mean([r["every_honest_above"] for r in report.values()])
  )
  out["eval/red_team/honest"] = next(iter(report.values()))["mean_honest"]
  out["eval/red_team/adversarial"] = float(
    np.mean([r["mean_adversarial"] for r in report.values()])
  )
  return out


def step_token_ends(tokenizer, ids: np.ndarray, text: str, steps: list[str]) -> list[int]:
  """Index in `ids` (a completion's tokens, `text == tokenizer.decode(ids)`) of the token
  that completes each step's text: the first token whose decoded prefix covers the step's
  last character. `steps` are the stripped steps of `text`, in order."""
  ends, pos = [], 0
  for step in steps:
    pos = text.index(step, pos) + len(step)
    ends.append(pos)
  # Characters covered by the first t + 1 tokens (a byte-fallback token may decode to a
  # partial character, hence the running maximum).
  covered = np.maximum.accumulate([len(tokenizer.decode(ids[: t + 1])) for t in range(len(ids))])
  return [int(min(np.searchsorted(covered, c), len(ids) - 1)) for c in ends]


class LearnedRewards:
  """Args:
  pool, verifier, shaping_cfg: the gold check (as `rewards.VerifierRewards`).
  rm_dir: a `python -m jaxrl_verify.process.train_rm` workdir (its newest intact step),
    restored on first use (a run may train it after building this source:
    `reward_bootstrap`).
  aggregate: how step probabilities become one score (`AGGREGATES`).
  rm_weight, verifier_weight: the training reward's mixture.
  placement: `outcome` (one score per completion) or `steps` (a PRM's step rewards).
  policy_tokenizer: the policy's tokenizer (placement `steps`: step ends in its tokens).
  judge_dirs: independent reward models (frozen `train_rm` workdirs, never updated),
    each scoring with `aggregate` too; `reward/judge` logs the first's mean score.
  combine, k: how the optimised RM and the judges make the score that trains
    (`combine_scores`; outcome placement only).
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
    placement: str = "outcome",
    policy_tokenizer=None,
    judge_dirs: tuple[str, ...] = (),
    combine: str = "judge",
    k: float = 1.0,
  ):
    if aggregate not in AGGREGATES:
      raise ValueError(f"Unknown RM aggregate {aggregate!r}; choose one of {AGGREGATES}.")
    if placement not in PLACEMENTS:
      raise ValueError(f"Unknown reward placement {placement!r}; choose one of {PLACEMENTS}.")
    if placement == "steps" and policy_tokenizer is None:
      raise ValueError("Step rewards need the policy's tokenizer (policy_tokenizer=...).")
    if combine not in COMBINES or (judge_dirs and placement == "steps"):
      raise ValueError(
        f"Judges combine by one of {COMBINES} (got {combine!r}) and score whole "
        "completions: use them with placement 'outcome'."
      )
    self.placement, self.policy_tokenizer = placement, policy_tokenizer
    self.combine, self.k = combine, k
    self.judges = [
      LearnedRewards(None, verifier, shaping_cfg, d, aggregate=aggregate) for d in judge_dirs
    ]
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
    tickets = self.gold.start(completions)  # The pool verifies while the RMs score.
    return (tickets, *self.score_steps(completions), self._judge_scores(completions))

  def _judge_scores(self, completions) -> tuple[np.ndarray, np.ndarray] | None:
    """(float32 [m, g] the judges' scores, bool [g] all of them read the row), or None."""
    if not self.judges:
      return None
    scores = [j.score(completions) for j in self.judges]
    return np.stack([s for s, _ in scores]), np.logical_and.reduce([r for _, r in scores])

  def finish(self, pending, completions: rewards_lib.Completions) -> rewards_lib.Rewards:
    tickets, proxy_g, scored_g, probs_gs, ends_gs, judged = pending
    metrics = None
    if judged is not None:
      judges_mg, judged_g = judged
      scored_g = scored_g & judged_g
      both = scored_g.any()
      metrics = {
        "reward/judge": float(judges_mg[0][scored_g].mean()) if both else 0.0,
        "reward/rm_optimised": float(proxy_g[scored_g].mean()) if both else 0.0,
      }
      proxy_g = combine_scores(np.concatenate([proxy_g[None], judges_mg]), self.combine, self.k)
      proxy_g = np.where(scored_g, proxy_g, 0.0).astype(np.float32)
    gold = self.gold.finish(tickets, completions)
    statuses = [v.status for v in gold.verdicts]
    gold_g = np.array([v.reward for v in gold.verdicts], np.float32)
    gold_g[[s in shaping.FAILURE_STATUSES for s in statuses]] = np.nan  # Not measured.
    steps = self.placement == "steps"
    reward_g = (0.0 if steps else self.rm_weight * proxy_g) + self.verifier_weight * gold.reward_g
    valid_g = scored_g & (gold.valid_g if self.verifier_weight else True)
    return rewards_lib.Rewards(
      np.asarray(reward_g, np.float32),
      np.asarray(valid_g, bool),
      gold.verdicts,
      gold.wait_s,
      proxy_g=proxy_g,
      gold_g=gold_g,
      rm_scored_g=scored_g,
      metrics=metrics,
      step_reward_gs=(self.rm_weight * probs_gs).astype(np.float32) if steps else None,
      step_end_gs=ends_gs if steps else None,
    )

  def score_texts(self, prompts: PromptBatch, texts: list[str]) -> np.ndarray:
    """float [b] RM scores of one completion per prompt (held-out eval), NaN where the RM
    cannot read one."""
    b = len(texts)
    completions = rewards_lib.Completions(
      prompts, texts, np.zeros(b, np.int32), np.ones(b, bool), max_new_tokens=0, group_size=1
    )
    proxy_g, scored_g = self.score(completions)
    judged = self._judge_scores(completions)
    if judged is not None:
      judges_mg, judged_g = judged
      proxy_g = combine_scores(np.concatenate([proxy_g[None], judges_mg]), self.combine, self.k)
      scored_g = scored_g & judged_g
    return np.where(scored_g, proxy_g, np.nan)

  def score(self, completions: rewards_lib.Completions) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [g] RM scores, bool [g] whether the RM could read the completion)."""
    return self.score_steps(completions, with_ends=False)[:2]

  def score_steps(self, completions: rewards_lib.Completions, *, with_ends: bool | None = None):
    """The RM's view of every completion:

    proxy_g: float32 [g] RM scores (0 for a completion with no step);
    scored_g: bool [g] whether the RM could read the completion;
    probs_gs: float32 [g, s] each step's probability (s = the RM's max_steps; 0 pads);
    ends_gs: int32 [g, s] the completion-token index that ends each step (-1 pads), with
      `with_ends` (default: placement `steps`; it reads `completions.tokens_gt`), else None.
    """
    if with_ends is None:
      with_ends = self.placement == "steps"
    self._restore()
    g = len(completions.texts)
    max_len, max_steps = self.rc.rm.max_len, self.rc.rm.max_steps
    proxy_g, scored_g = np.zeros(g, np.float32), np.ones(g, bool)
    probs_gs = np.zeros((g, max_steps), np.float32)
    ends_gs = np.full((g, max_steps), -1, np.int32) if with_ends else None
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
        probs_gs[i, : len(p)] = p
    if ends_gs is not None:
      for i, steps in zip(rows, solutions):
        ids = completions.tokens_gt[i, : completions.length_g[i]]
        text = completions.texts[i]
        ends_gs[i, : len(steps)] = step_token_ends(self.policy_tokenizer, ids, text, steps)
    return proxy_g, scored_g, probs_gs, ends_gs
