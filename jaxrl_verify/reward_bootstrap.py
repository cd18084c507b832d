"""A learned outcome reward model trained at the start of a run, on the initial policy's own
samples labelled by the verifier: Gao et al. (2022)'s setup, where the reward model sees a
limited set of gold labels and the policy then optimises it.

With `config.reward.bootstrap.problems > 0`, a fresh run (after its supervised warm start,
before step 0) does, in WORKDIR/reward_model:

1. `labelled/{train,test}.jsonl`: `problems` train prompts (their own shuffle, not the RL
   run's) with `rollout.group_size` samples each from the initial policy, verified; split
   by problem (`test_frac` held out). Each line is `process.label_cli`'s format; every step
   carries the completion's outcome, and an ORM reads only the last.
2. `policy/`: the initial policy with its tokenizer (the ORM's backbone when
   `init_from_policy`, and its tokenizer either way).
3. The ORM itself: a `process.rm_trainer` run in WORKDIR/reward_model (checkpoints,
   metrics.jsonl with its held-out `eval/step_accuracy`), then `done.json`.

Each artifact is skipped when present, so an interrupted run redoes only what is missing.
The run then trains against that ORM (`learned_rewards.LearnedRewards`), the verifier
beside it as the gold check it was never trained on past those labels.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import ml_collections as mlc
import numpy as np
from absl import logging

from jaxrl_verify import files
from jaxrl_verify import rewards as rewards_lib
from jaxrl_verify.data import pipeline
from jaxrl_verify.models import io as model_io
from jaxrl_verify.process import rm_config, rm_trainer
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.rl import shaping
from jaxrl_verify.sampler import jsonl

DIRNAME = "reward_model"


def reward_model_dir(config, workdir: str) -> str:
  """The `process.train_rm` workdir the run's learned reward restores from."""
  if config.reward.rm_dir:
    return config.reward.rm_dir
  return os.path.join(workdir, DIRNAME)


def replay_path(config, workdir: str) -> str:
  """The labelled data the bootstrapped reward model was trained on ("" for a given one)."""
  if config.reward.rm_dir:
    return ""
  return os.path.join(workdir, DIRNAME, "labelled", "train.jsonl")


def enabled(config) -> bool:
  return config.reward.bootstrap.problems > 0


def ensure_reward_model(config, workdir: str, run, collector, pool, state, model_cfg) -> str:
  """Builds WORKDIR/reward_model (the steps above) unless done; returns its path.

  Args:
    config: the run's config (`reward.bootstrap` and the RL rollout settings).
    run: the run's `setup_lib.Prepared` (task, tokenizer, data_dir).
    collector: the run's `experience.ExperienceCollector` (its sampler and rollout
      settings draw the samples).
    pool: the run's verifier pool (the gold labels).
    state: the warm-started `TrainState`: its policy is sampled and saved.
    model_cfg: the policy's `ModelConfig`.
  """
  out = os.path.join(workdir, DIRNAME)
  if os.path.exists(os.path.join(out, "done.json")):
    return out
  os.makedirs(out, exist_ok=True)
  policy_dir = os.path.join(out, "policy")
  if not os.path.exists(policy_dir):
    partial = f"{policy_dir}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model_io.save_model(partial, model_cfg, state.policy, tokenizer=run.tokenizer)
    os.replace(partial, policy_dir)
  data_dir = os.path.join(out, "labelled")
  if not os.path.exists(os.path.join(data_dir, "test.jsonl")):
    os.makedirs(data_dir, exist_ok=True)
    train, test, accuracy = labelled_samples(config, run, collector, pool, state)
    jsonl.write_jsonl_atomically(os.path.join(data_dir, "train.jsonl"), train)
    jsonl.write_jsonl_atomically(os.path.join(data_dir, "test.jsonl"), test)
    logging.info(
      "Reward-model data: %d train and %d held-out samples, %.3f verified correct.",
      len(train),
      len(test),
      accuracy,
    )
  _, metrics = rm_trainer.train_rm(rm_run_config(config, data_dir, policy_dir), out)
  with files.atomic_output(os.path.join(out, "done.json")) as f:
    json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2, sort_keys=True)
  return out


def rm_run_config(config, data_dir: str, policy_dir: str) -> mlc.ConfigDict:
  """The ORM's `process.train_rm` config: `reward.bootstrap.rm` over its defaults."""
  b = config.reward.bootstrap
  rc = rm_config.base_config()
  rc.update(b.rm)  # Recursive: only the fields given change.
  rc.seed = config.seed + b.seed_offset
  rc.rm.kind = "orm"
  rc.data.format = "labelled"
  rc.data.manual_dir = data_dir
  rc.data.step_format = config.reward.bootstrap.step_format
  if b.init_from_policy:
    rc.model.init_from = policy_dir
  else:  # A fresh backbone (`rm.model.preset`) with the policy's tokenizer.
    rc.model.init_from = ""
    rc.tokenizer.path = os.path.join(policy_dir, model_io.TOKENIZER_FILENAME)
  rc.mesh_shape = config.mesh_shape
  return rc


def labelled_samples(config, run, collector, pool, state) -> tuple[list[dict], list[dict], float]:
  """(train records, held-out records, fraction verified correct) of the initial policy's
  samples of `bootstrap.problems` train prompts."""
  b = config.reward.bootstrap
  fmt = steps_lib.step_format(b.step_format)
  prompts = pipeline.PromptIterator(
    run.task,
    "train",
    batch_size=config.rollout.prompts_per_step,
    tokenizer=run.tokenizer,
    max_prompt_len=config.task.max_prompt_len,
    seed=config.seed + b.seed_offset,  # Its own order: the RL run's prompts are untouched.
    data_dir=run.data_dir,
  )
  gold = rewards_lib.VerifierRewards(pool, collector.cfg.verifier, collector.cfg.shaping)
  rng = jax.random.PRNGKey(config.seed + b.seed_offset)
  records: list[tuple[int, dict]] = []
  correct = []
  seen: dict[str, int] = {}
  for r in range(-(-b.problems // config.rollout.prompts_per_step)):
    samples = collector.sample(state, next(prompts), jax.random.fold_in(rng, r))
    c = samples.completions
    verdicts = gold.finish(gold.start(c), c).verdicts
    for i, (text, verdict) in enumerate(zip(c.texts, verdicts)):
      if verdict.status in shaping.FAILURE_STATUSES:
        continue  # The check failed (timeout, error): no gold label.
      steps = [s.strip() for s in fmt.split(text) if s.strip()]
      if not steps:
        continue
      prompt, reference = c.prompts.prompts[c.prompt_of(i)], c.prompts.references[c.prompt_of(i)]
      problem = seen.setdefault(prompt, len(seen))
      outcome = verdict.reward >= 0.5  # Gold: an answer missing or wrong is 0.
      correct.append(outcome)
      record = {
        "prompt": prompt,
        "steps": steps,
        "reference": reference,
        "labels": [outcome] * len(steps),
      }
      records.append((problem, record))
  if not records:
    raise ValueError(
      "The initial policy's samples gave no labelled completion for the reward model; "
      "check config.reward.bootstrap.step_format and the verifier on a few samples."
    )
  held_out = max(1, round(b.test_frac * len(seen)))
  train = [rec for p, rec in records if p < len(seen) - held_out]
  test = [rec for p, rec in records if p >= len(seen) - held_out]
  if not train:
    raise ValueError(
      f"The reward model's samples cover {len(seen)} problem(s), too few to hold "
      f"{held_out} out; raise config.reward.bootstrap.problems."
    )
  return train, test, float(np.mean(correct))
