"""A learned outcome reward model trained at the start of a run, on the initial policy's own
samples labelled by the verifier: Gao et al. (2022)'s setup, where the reward model sees a
limited set of gold labels and the policy then optimises it.

With `config.reward.bootstrap.problems > 0`, a fresh run (after its supervised warm start,
before step 0) does, in WORKDIR/reward_model:

1. `labelled/{train,test}.jsonl`: `problems` train prompts (their own shuffle, not the RL
   run's) with `rollout.group_size` samples each from the initial policy, verified; split
   by problem (`test_frac` held out). Each line is `process.label_cli`'s format. For an
   ORM (`kind="orm"`) every step carries the completion's outcome, and the ORM reads only
   the last; for a PRM (`kind="prm"`) each step carries its Math-Shepherd hard label: 1 if
   any of `label.num_rollouts` continuations of the solution after that step, sampled from
   the initial policy, is verified correct (`process.label`), the last step its outcome.
2. `policy/`: the initial policy with its tokenizer (the ORM's backbone when
   `init_from_policy`, and its tokenizer either way).
3. The RM itself: a `process.rm_trainer` run in WORKDIR/reward_model (checkpoints,
   metrics.jsonl with its held-out `eval/step_accuracy`), then `done.json`.

With `config.reward.independent.problems > 0` the same steps build a second, *independent*
reward model in WORKDIR/reward_model_independent (`INDEPENDENT_DIRNAME`): its own seed,
problems disjoint from the first one's, and by default its own (smaller) backbone, frozen:
the judge or pessimistic-ensemble partner of `learned_rewards`.

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
from jaxrl_verify.process import label, rm_config, rm_trainer
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.rl import shaping
from jaxrl_verify.sampler import Sampler, jsonl

DIRNAME = "reward_model"
INDEPENDENT_DIRNAME = "reward_model_independent"


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


def judge_dirs(config, workdir: str) -> tuple[str, ...]:
  """The independent reward models' workdirs (the one the run trains, if any)."""
  return (os.path.join(workdir, INDEPENDENT_DIRNAME),) if independent(config) else ()


def enabled(config) -> bool:
  return config.reward.bootstrap.problems > 0 or independent(config)


def independent(config) -> bool:
  return config.reward.independent.problems > 0


def ensure_reward_model(config, workdir: str, run, collector, pool, state, model_cfg) -> str:
  """Builds WORKDIR/reward_model (unless `reward.rm_dir` names one) and, when asked, the
  independent WORKDIR/reward_model_independent; returns the optimised one's path."""
  out = reward_model_dir(config, workdir)
  if config.reward.bootstrap.problems > 0:
    args = (config, config.reward.bootstrap, os.path.join(workdir, DIRNAME), run, collector)
    build(*args, pool, state, model_cfg)
  if independent(config):
    seen = _labelled_prompts(out)
    args = (config, config.reward.independent, judge_dirs(config, workdir)[0], run, collector)
    build(*args, pool, state, model_cfg, exclude=seen)
  return out


def _labelled_prompts(rm_dir: str) -> frozenset[str]:
  """The prompts of a bootstrapped reward model's labelled data (empty for a given one)."""
  prompts = set()
  for split in ("train", "test"):
    path = os.path.join(rm_dir, "labelled", f"{split}.jsonl")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        prompts.update(json.loads(line)["prompt"] for line in f if line.strip())
  return frozenset(prompts)


def build(
  config, spec, out: str, run, collector, pool, state, model_cfg, exclude=frozenset()
) -> str:
  """Builds the reward model `spec` (a `reward.bootstrap`-shaped section) in `out` (the
  steps above) unless done; returns `out`.

  Args:
    config: the run's config (its seed and RL rollout settings).
    spec: `config.reward.bootstrap` or `config.reward.independent`.
    out: the reward model's directory.
    run: the run's `setup_lib.Prepared` (task, tokenizer, data_dir).
    collector: the run's `experience.ExperienceCollector` (its sampler and rollout
      settings draw the samples).
    pool: the run's verifier pool (the gold labels).
    state: the warm-started `TrainState`: its policy is sampled and saved.
    model_cfg: the policy's `ModelConfig`.
    exclude: prompts whose samples the reward model must not see (another one's data).
  """
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
    train, test, accuracy = labelled_samples(config, spec, run, collector, pool, state, exclude)
    if spec.kind == "prm":
      train, test = (step_labelled(config, spec, collector, pool, state, r) for r in (train, test))
    jsonl.write_jsonl_atomically(os.path.join(data_dir, "train.jsonl"), train)
    jsonl.write_jsonl_atomically(os.path.join(data_dir, "test.jsonl"), test)
    logging.info(
      "Reward-model data: %d train and %d held-out samples, %.3f verified correct.",
      len(train),
      len(test),
      accuracy,
    )
  _, metrics = rm_trainer.train_rm(rm_run_config(config, spec, data_dir, policy_dir), out)
  with files.atomic_output(os.path.join(out, "done.json")) as f:
    json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2, sort_keys=True)
  return out


def rm_run_config(config, spec, data_dir: str, policy_dir: str) -> mlc.ConfigDict:
  """The RM's `process.train_rm` config: `spec.rm` over its defaults."""
  b = spec
  rc = rm_config.base_config()
  rc.update(b.rm)  # Recursive: only the fields given change.
  rc.seed = config.seed + b.seed_offset
  rc.rm.kind = b.kind
  rc.data.format = "labelled"
  rc.data.manual_dir = data_dir
  rc.data.step_format = b.step_format
  if b.init_from_policy:
    rc.model.init_from = policy_dir
  else:  # A fresh backbone (`rm.model.preset`) with the policy's tokenizer.
    rc.model.init_from = ""
    rc.tokenizer.path = os.path.join(policy_dir, model_io.TOKENIZER_FILENAME)
  rc.mesh_shape = config.mesh_shape
  return rc


def labelled_samples(
  config, spec, run, collector, pool, state, exclude=frozenset()
) -> tuple[list[dict], list[dict], float]:
  """(train records, held-out records, fraction verified correct) of the initial policy's
  samples of `spec.problems` train prompts not in `exclude`."""
  b = spec
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
  drawn: set[str] = set()
  for r in range(100 * -(-b.problems // config.rollout.prompts_per_step)):
    if len(drawn) >= b.problems:
      break
    batch = next(prompts)
    fresh = []
    for p in batch.prompts:
      fresh.append(p not in exclude and (p in drawn or len(drawn) < b.problems))
      if fresh[-1]:
        drawn.add(p)
    if not any(fresh):
      continue  # Another reward model's problems (or enough): not sampled.
    samples = collector.sample(state, batch, jax.random.fold_in(rng, r))
    c = samples.completions
    verdicts = gold.finish(gold.start(c), c).verdicts
    for i, (text, verdict) in enumerate(zip(c.texts, verdicts)):
      if not fresh[c.prompt_of(i)] or verdict.status in shaping.FAILURE_STATUSES:
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


def step_labelled(config, spec, collector, pool, state, records: list[dict]) -> list[dict]:
  """`records` with Math-Shepherd step labels (hard: any of N continuations correct) from
  the initial policy's own rollouts, verified by the pool; the last step keeps its outcome.

  The rollouts continue prompt + solution prefix, so their sampler takes prompts of up to
  `task.max_prompt_len + rollout.max_new_tokens` tokens (the run's sampler, wider)."""
  b = spec
  if not records:
    return records
  run_sampler = collector.sampler
  sampler = Sampler(
    run_sampler.graphdef,
    run_sampler.cfg,
    max_prompt_len=run_sampler.max_prompt_len + run_sampler.max_new_tokens,
    max_new_tokens=run_sampler.max_new_tokens,
    eos_id=run_sampler.eos_id,
    pad_id=run_sampler.pad_id,
    mesh=run_sampler.mesh,
  )
  cfg = label.LabelConfig(
    num_rollouts=b.label.num_rollouts,
    mode="full",
    step_format=b.step_format,
    prefixes_per_call=b.label.prefixes_per_call,
  )
  solutions = [
    label.Solution(r["prompt"], tuple(r["steps"]), r["reference"], r.get("fields") or {})
    for r in records
  ]
  counter = label.RolloutCounter(
    sampler,
    state.policy,
    collector.tokenizer,
    pool,
    collector.cfg.verifier,
    solutions,
    cfg,
    sampling=collector.sampling,
    rng=jax.random.PRNGKey(config.seed + b.seed_offset + 1),
    mesh=collector.mesh,
  )
  finals = [bool(r["labels"][-1]) for r in records]  # Already verified.
  labelled = label.label_full(solutions, finals, counter, cfg.num_rollouts)
  out = [{**r, "labels": [bool(x) for x in lab.labels]} for r, lab in zip(records, labelled)]
  logging.info(
    "Monte-Carlo step labels: %d rollouts (%d tokens) for %d prefixes.",
    sum(sum(lab.rollouts) for lab in labelled),
    counter.tokens,
    sum(len(r["steps"]) - 1 for r in records),
  )
  return out
