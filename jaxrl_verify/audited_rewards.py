"""An adversarial reward model: a learned reward whose mistakes the verifier audits, a small
fraction of every batch, and which is updated online on those labels.

`AuditedRewards` is a `learned_rewards.LearnedRewards` (same training reward, same gold
measurement on every row) that, each step after the rewards are fixed:

1. audits `audit_frac` of the rows the reward model could score, chosen by `select`:
   `confident` (its highest scores: where a hack the policy found shows up as a confident
   false positive), `uncertain` (scores nearest 0.5) or `random`;
2. reads the verifier's verdict of just those rows (the external feedback that enters
   the loop: `verify/audited_frac`, `verify/audited_calls`; the gold check of the other
   rows is measurement only and never trained on), hard negatives (audited rows the
   verifier rejects) first;
3. takes `updates_per_step` AdamW steps on the reward model: each batch holds that step's
   audited rows and fills up with labels replayed from earlier audits and from the data
   the reward model was trained on (`replay_path`), so it does not forget what it knew.

The reward model's parameters, optimizer state and audit buffer are checkpointed with the
run (`save`, `restore`) in their own directory, at the run's checkpoint steps, so a
resumed run continues bit for bit.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import optax

from jaxrl_verify import checkpoint as ckpt_lib
from jaxrl_verify import distributed, learned_rewards
from jaxrl_verify import rewards as rewards_lib
from jaxrl_verify import sharding as shd
from jaxrl_verify.process import rm

SELECTIONS = ("confident", "uncertain", "random")


class AuditedRewards(learned_rewards.LearnedRewards):
  """Args (beyond `LearnedRewards`'s):
  audit_frac: fraction of the scored rows the verifier's label is used for, in (0, 1].
  select: which rows are audited (`SELECTIONS`).
  updates_per_step, batch_size, learning_rate: the reward model's online AdamW steps.
  replay_path: a `label_cli`-format JSONL of labelled solutions to replay (the reward
    model's own training data), or "".
  checkpoint_dir, keep_checkpoints: where the online reward model's state is saved with
    the run's, and how many steps are kept (the run's own number: the same steps survive).
  seed: the replay draws' seed (each step folds in its update count).
  """

  def __init__(
    self,
    *args,
    audit_frac: float,
    select: str = "confident",
    updates_per_step: int = 1,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    replay_path: str = "",
    checkpoint_dir: str,
    keep_checkpoints: int | None = 3,
    seed: int = 0,
    **kwargs,
  ):
    super().__init__(*args, **kwargs)
    if not 0 < audit_frac <= 1 or select not in SELECTIONS:
      raise ValueError(
        f"An audit needs audit_frac in (0, 1] and select in {SELECTIONS}, got "
        f"{audit_frac} and {select!r}."
      )
    self.audit_frac, self.select = audit_frac, select
    self.updates_per_step, self.batch_size = updates_per_step, batch_size
    self.learning_rate, self.replay_path, self.seed = learning_rate, replay_path, seed
    self.checkpointer = ckpt_lib.Checkpointer(
      checkpoint_dir, max_to_keep=keep_checkpoints, async_save=False
    )
    self.updates = 0
    self.audits: list[tuple[str, list[str], float]] = []  # (prompt, steps, gold label).
    self._replay: list[tuple[str, list[str], float]] | None = None

  # ------------------------------------------------------------------ online state

  def _restore(self) -> None:
    if self._restored:
      return
    super()._restore()
    self.tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(self.learning_rate))
    mesh = jax.tree.leaves(self.params)[0].sharding.mesh  # rm_setup.restore's.
    self.opt_state = distributed.init_optimizer(self.tx, self.params, mesh)
    graphdef = self._graphdef
    self.train_step = jax.jit(rm.make_train_step(graphdef, self.tx))
    self._replay = [
      (p, s, y)
      for p, s, y in _read_replay(self.replay_path)
      if len(s) <= self.rc.rm.max_steps
      and rm.packed_length(self.tokenizer, p, s, self.fmt) <= self.rc.rm.max_len
    ]

  def save(self, step: int) -> None:
    """Saves the online reward model as checkpoint `step` (beside the run's own)."""
    self._restore()
    meta = {"updates": self.updates, "audits": self.audits}
    self.checkpointer.save(step, {"params": self.params, "opt": self.opt_state}, meta, force=True)

  def restore(self, step: int) -> None:
    """Restores the online reward model saved with the run's checkpoint `step`."""
    self._restore()
    target = shd.as_abstract({"params": self.params, "opt": self.opt_state})
    state, meta = self.checkpointer.restore(step, target_pytree=target)
    self.params, self.opt_state = state["params"], state["opt"]
    self.updates = int(meta["updates"])
    self.audits = [(p, list(s), float(y)) for p, s, y in meta["audits"]]

  # ------------------------------------------------------------------ a round

  def finish(self, pending, completions: rewards_lib.Completions) -> rewards_lib.Rewards:
    rewards = super().finish(pending, completions)  # Rewards from the RM before this update.
    chosen = self.choose(rewards.proxy_g, rewards.rm_scored_g & np.isfinite(rewards.gold_g))
    new = []
    for i in chosen:
      steps = [s.strip() for s in self.fmt.split(completions.texts[i]) if s.strip()]
      if steps:
        prompt = completions.prompts.prompts[completions.prompt_of(i)]
        new.append((prompt, steps, float(rewards.gold_g[i] >= 0.5)))
    new.sort(key=lambda a: a[2])  # Hard negatives (rejected by the verifier) first.
    losses = [self._update(new) for _ in range(self.updates_per_step)] if new else []
    self.audits.extend(new)
    g = len(completions.texts)
    metrics = {
      "verify/audited_frac": len(chosen) / max(g, 1),
      "verify/audited_calls": float(len(chosen)),
      "rm/audit_hard_negative_frac": float(np.mean([y == 0 for *_, y in new])) if new else 0.0,
      "rm/online_loss": float(np.mean(losses)) if losses else float("nan"),
      "rm/online_updates": float(self.updates),
    }
    return rewards_lib.Rewards(
      **{**vars(rewards), "metrics": {**(rewards.metrics or {}), **metrics}}
    )

  def choose(self, proxy_g: np.ndarray, eligible_g: np.ndarray) -> np.ndarray:
    """Indices of the rows to audit: `audit_frac` of the eligible ones, by `select`."""
    rows = np.flatnonzero(eligible_g)
    k = min(len(rows), int(np.ceil(self.audit_frac * len(proxy_g))))
    if k == 0:
      return rows[:0]
    if self.select == "confident":
      order = np.argsort(-proxy_g[rows], kind="stable")
    elif self.select == "uncertain":
      order = np.argsort(np.abs(proxy_g[rows] - 0.5), kind="stable")
    else:
      order = np.random.default_rng([self.seed, self.updates]).permutation(len(rows))
    return rows[order[:k]]

  def _update(self, new: list[tuple[str, list[str], float]]) -> float:
    """One AdamW step on `new` plus replayed labels; returns its loss."""
    pool = self._replay + self.audits
    fill = max(self.batch_size - len(new), 0)
    rng = np.random.default_rng([self.seed, self.updates])
    replayed = [pool[int(j)] for j in rng.integers(0, len(pool), fill)] if pool else []
    rows = (new + replayed)[: self.batch_size]
    rows += [rows[-1]] * (self.batch_size - len(rows))  # One compiled shape.
    batch = rm.pack(
      self.tokenizer,
      [p for p, _, _ in rows],
      [s for _, s, _ in rows],
      [[y] * len(s) for _, s, y in rows],
      self.fmt,
      max_len=self.rc.rm.max_len,
      max_steps=self.rc.rm.max_steps,
      outcome_only=True,
    )
    self.params, self.opt_state, m = self.train_step(self.params, self.opt_state, batch)
    self.updates += 1
    return float(m["loss"])


def _read_replay(path: str) -> list[tuple[str, list[str], float]]:
  if not path or not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    rows = [json.loads(line) for line in f if line.strip()]
  return [(r["prompt"], list(r["steps"]), float(r["labels"][-1])) for r in rows]
