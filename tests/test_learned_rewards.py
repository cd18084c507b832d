"""A trained reward model as the RL reward source: its scores are the reward model's own
(recomputed directly), the verifier runs beside it as gold, rows it cannot read are
masked, and a run logs proxy, gold and the hack gap."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from config_files import load_config

from jaxrl_verify import config_lib, learned_rewards, train
from jaxrl_verify import rewards as rewards_lib
from jaxrl_verify.experience import round_metrics
from jaxrl_verify.process import rm, rm_setup, rm_trainer
from jaxrl_verify.types import PromptBatch
from jaxrl_verify.verifiers.pool import VerifierPool


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
  """A real (tiny) reward model: `configs/prm_stepwise.py:runlocal`, trained for 6 steps."""
  workdir = tmp_path_factory.mktemp("rm")
  rm_trainer.train_rm(load_config("prm_stepwise", "runlocal"), str(workdir))
  return str(workdir)


def _completions(texts, prompts):
  batch = PromptBatch(
    tokens_bp=np.zeros((len(prompts), 1), np.int32),
    mask_bp=np.ones((len(prompts), 1), bool),
    prompts=prompts,
    references=["4"] * len(prompts),
    fields=[{}] * len(prompts),
    ids=[str(i) for i in range(len(prompts))],
  )
  return rewards_lib.Completions(
    prompts=batch,
    texts=texts,
    length_g=np.array([len(t) for t in texts]),
    finished_g=np.ones(len(texts), bool),
    max_new_tokens=64,
    group_size=len(texts) // len(prompts),
  )


def test_scores_are_the_reward_models_and_gold_is_the_verifiers(rm_dir):
  texts = [
    "I have 2 coins and get 2 more.\nSo I have 4 coins.\n\\boxed{4}",
    "",  # No step: score 0, still a real answer.
    "\n".join(["one more coin"] * 40),  # More steps than the RM scores: masked, counted.
    "So I have 5 coins.\n\\boxed{5}",
  ]
  completions = _completions(texts, ["How many coins do I have?", "And now?"])
  with VerifierPool(num_workers=1) as pool:
    source = learned_rewards.LearnedRewards(pool, "math", rewards_lib.Shaping(), rm_dir)
    rewards = source.finish(source.start(completions), completions)
  rc, tok, graphdef, params = rm_setup.restore(rm_dir)
  direct = rm.score_solutions(
    jax.jit(rm.make_score_fn(graphdef)),
    params,
    tok,
    source.fmt,
    [completions.prompts.prompts[i // 2] for i in (0, 3)],
    [source.fmt.split(texts[i]) for i in (0, 3)],
    max_len=rc.rm.max_len,
    max_steps=rc.rm.max_steps,
    batch_size=rc.eval.batch_size,
  )
  want = [rm.solution_score(p, "last") for p in direct]
  np.testing.assert_allclose(rewards.proxy_g[[0, 3]], want, rtol=1e-6)
  assert rewards.proxy_g[1] == 0.0 and rewards.rm_scored_g.tolist() == [True, True, False, True]
  assert rewards.valid_g.tolist() == [True, True, False, True]
  np.testing.assert_array_equal(rewards.gold_g, [1.0, 0.0, 0.0, 0.0])
  np.testing.assert_allclose(rewards.reward_g, rewards.proxy_g)
  m = round_metrics(completions, rewards, 0.1, 0.1)
  scored = [0, 1, 3]
  assert m["reward/proxy"] == pytest.approx(np.mean(rewards.proxy_g[scored]))
  assert m["reward/gold"] == pytest.approx(1 / 3)
  assert m["reward/hack_gap"] == pytest.approx(m["reward/proxy"] - m["reward/gold"])
  assert m["reward/rm_unscored_frac"] == 0.25


def test_a_run_trained_by_a_learned_reward_logs_the_hack_gap(rm_dir, tmp_path):
  config = load_config("quickstart", "runlocal")
  with config.unlocked():
    config.total_steps = 2
    config.reward.rm_dir = rm_dir
    config.reward.verifier_weight = 0.5
    config.eval.num_examples = 8
    config.eval.batch_size = 8
    config.eval.k = 1
  train.train_and_evaluate(config, str(tmp_path / "run"))
  lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines]
  for r in records[1:]:
    assert r["reward/hack_gap"] == pytest.approx(r["reward/proxy"] - r["reward/gold"])
    assert 0.0 <= r["reward/proxy"] <= 1.0 and 0.0 <= r["reward/gold"] <= 1.0
  assert "eval/accuracy" in records[-1]  # Held-out eval is the verifier's: gold.


def test_red_team_metrics_rank_by_the_scorer_a_perfect_judge_and_a_real_rm(rm_dir, tmp_path):
  """The verifier as a perfect outcome judge beats every answer-changing attack and ties the
  answer-keeping ones; a real RM's figures are well-formed fractions of the same report."""
  from jaxrl_verify.data import pipeline, tasks
  from jaxrl_verify.process import red_team
  from jaxrl_verify.verifiers.math import verify_math

  task = tasks.get_task("arithmetic", size="tiny", difficulty=(2,))
  tok = rm_setup.restore(rm_dir)[1]
  batches = pipeline.PromptIterator(
    task, "test", batch_size=8, tokenizer=tok, max_prompt_len=256, seed=0, data_dir=tmp_path
  )
  examples = [batches.examples[i] for i in range(8)]
  batch = batches.make_batch(examples)
  honest, adversarial = red_team.solution_texts(examples, np.random.default_rng(0))

  def judge(b, texts):
    return np.array([verify_math(t, r).reward for t, r in zip(texts, b.references)])

  m = learned_rewards.red_team_metrics(judge, batch, honest, adversarial)
  assert m["eval/red_team/wrong_answer"] == m["eval/red_team/truncated"] == 1.0
  assert m["eval/red_team/master_key"] == 1.0
  assert m["eval/red_team/right_answer_nonsense_steps"] == 0.5  # Ties: the answer is right.
  assert m["eval/red_team/separated_kinds"] == pytest.approx(3 / 5)
  assert m["eval/red_team/honest"] == 1.0
  with VerifierPool(num_workers=1) as pool:
    source = learned_rewards.LearnedRewards(pool, "math", rewards_lib.Shaping(), rm_dir)
    real = learned_rewards.red_team_metrics(source.score_texts, batch, honest, adversarial)
  assert set(real) == set(m)
  assert all(0.0 <= v <= 1.0 for v in real.values()), real


def test_bad_learned_reward_config_is_one_sentence(tmp_path):
  c = config_lib.base_config()
  c.reward.rm_dir = str(tmp_path)
  with pytest.raises(ValueError, match=r"config\.reward\.rm_dir .* holds no checkpoints/"):
    config_lib.validate(c)
  (tmp_path / "checkpoints").mkdir()
  c.reward.rm_aggregate = "mean"
  with pytest.raises(ValueError, match=r"config\.reward\.rm_aggregate is 'mean'"):
    config_lib.validate(c)
  c.reward.rm_aggregate = "min"
  c.reward.rm_weight = 0.0
  with pytest.raises(ValueError, match="not both 0"):
    config_lib.validate(c)


def _records(workdir):
  return [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]


def _deterministic(record):
  timings = ("time/", "tokens_per_s", "verify/latency", "verify/throughput")
  return {k: v for k, v in record.items() if not k.startswith(timings)}


def test_overoptimisation_runlocal_trains_its_orm_audits_it_and_resumes_exactly(tmp_path):
  """`configs/overopt_orm.py:adversarial,runlocal`: the ORM is trained from the initial
  policy's verified samples before step 0, trains the policy, is audited and updated
  online every step; the contract's metrics and plot; a stopped run resumes bit for bit."""
  from jaxrl_verify import reward_bootstrap
  from jaxrl_verify.process import red_team
  from jaxrl_verify.verifiers.math import verify_math

  config = load_config("overopt_orm", "adversarial,runlocal")
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train.train_and_evaluate(config, str(straight))
  rm_dir = straight / reward_bootstrap.DIRNAME
  assert (rm_dir / "done.json").exists() and (straight / "overoptimisation.png").stat().st_size
  # The ORM's labels are the verifier's verdicts of the initial policy's samples.
  labelled = [
    json.loads(line)
    for split in ("train", "test")
    for line in (rm_dir / "labelled" / f"{split}.jsonl").read_text().splitlines()
  ]
  assert len(labelled) >= 16
  for r in labelled:
    verdict = verify_math("\n".join(r["steps"]), r["reference"])
    assert r["labels"] == [verdict.reward >= 0.5] * len(r["steps"]), r
  records = _records(straight)
  assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
  for r in records[1:]:
    assert r["reward/hack_gap"] == pytest.approx(r["reward/proxy"] - r["reward/gold"])
    assert np.isfinite(r["kl_from_init"]) and 0 < r["verify/audited_frac"] <= 0.1
    assert r["rm/online_updates"] == 2 * r["step"]
  evals = [r for r in records if "eval/accuracy" in r]
  assert [r["step"] for r in evals] == [0, 2, 4]
  for r in evals:
    assert r["eval/gold_accuracy"] == r["eval/accuracy"] and 0 <= r["eval/proxy"] <= 1
    assert 0 <= r["eval/red_team/separated_kinds"] <= 1  # The audited ORM, red-teamed.
    assert {f"eval/red_team/{k}" for k in red_team.TEXT_KINDS} <= set(r)

  train.train_and_evaluate(config, str(resumed), stop_after=2)
  trained_at = (resumed / reward_bootstrap.DIRNAME / "done.json").stat().st_mtime_ns
  train.train_and_evaluate(config, str(resumed))
  # The ORM is not retrained on resume, and the online one continues where it was saved.
  assert (resumed / reward_bootstrap.DIRNAME / "done.json").stat().st_mtime_ns == trained_at
  assert [_deterministic(r) for r in _records(resumed)] == [_deterministic(r) for r in records]


def test_independent_runlocal_trains_a_disjoint_smaller_judge_and_trains_on_the_minimum(tmp_path):
  """`configs/overopt_orm.py:independent,runlocal`: a second ORM is trained on problems the
  first never saw, on a fresh `tiny` backbone (the first is the `mini` policy's), and the
  policy trains on the pessimistic minimum of the two, each logged beside it."""
  from jaxrl_verify import reward_bootstrap

  config = load_config("overopt_orm", "independent,runlocal")
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir))

  def prompts(name):
    d = workdir / name / "labelled"
    return {
      json.loads(x)["prompt"] for f in d.glob("*.jsonl") for x in f.read_text().split("\n") if x
    }

  first, second = prompts(reward_bootstrap.DIRNAME), prompts(reward_bootstrap.INDEPENDENT_DIRNAME)
  assert len(second) == config.reward.independent.problems and not first & second
  presets = [
    rm_setup.restore(str(workdir / d))[0].model
    for d in (reward_bootstrap.DIRNAME, reward_bootstrap.INDEPENDENT_DIRNAME)
  ]
  assert presets[1].preset == "tiny" and presets[0].init_from  # The policy's backbone.
  for r in _records(workdir)[1:]:
    # The mean of a per-row minimum is at most either member's mean.
    assert r["reward/proxy"] <= min(r["reward/judge"], r["reward/rm_optimised"]) + 1e-6
    assert r["reward/hack_gap"] == pytest.approx(r["reward/proxy"] - r["reward/gold"])


def test_prm_shaped_runlocal_trains_a_monte_carlo_prm_and_its_outcome_twin_does_not(tmp_path):
  """`configs/prm_shaped_chain.py:process,runlocal`: a PRM is trained before step 0 on the
  initial policy's samples with Math-Shepherd step labels (the last step the verifier's
  outcome), then process GRPO on its step rewards logs proxy and gold; `:outcome,runlocal`
  is the verifier alone."""
  from jaxrl_verify import reward_bootstrap
  from jaxrl_verify.verifiers.math import verify_math

  process, outcome = tmp_path / "process", tmp_path / "outcome"
  train.train_and_evaluate(load_config("prm_shaped_chain", "process,runlocal"), str(process))
  rm_dir = process / reward_bootstrap.DIRNAME
  rc = rm_setup.restore(str(rm_dir))[0]
  assert rc.rm.kind == "prm" and (rm_dir / "done.json").exists()
  labelled = [
    json.loads(line)
    for split in ("train", "test")
    for line in (rm_dir / "labelled" / f"{split}.jsonl").read_text().splitlines()
  ]
  assert labelled
  for r in labelled:
    assert len(r["labels"]) == len(r["steps"]) and all(isinstance(x, bool) for x in r["labels"])
    outcome_ok = verify_math("\n".join(r["steps"]), r["reference"]).reward >= 0.5
    assert r["labels"][-1] == outcome_ok
  records = _records(process)
  for r in records[1:]:
    assert r["reward/hack_gap"] == pytest.approx(r["reward/proxy"] - r["reward/gold"])
  train.train_and_evaluate(load_config("prm_shaped_chain", "outcome,runlocal"), str(outcome))
  assert not (outcome / reward_bootstrap.DIRNAME).exists()
  assert all("reward/proxy" not in r for r in _records(outcome))
  assert [r["step"] for r in _records(outcome)] == [r["step"] for r in records]


def test_bootstrap_config_errors_are_one_sentence(tmp_path):
  c = load_config("overopt_orm", "plain")
  with c.unlocked():
    c.reward.rm_dir = str(tmp_path)
  with pytest.raises(ValueError, match="not both"):
    config_lib.validate(c)
  for variant in ("plain", "kl", "adversarial", "independent"):
    config_lib.validate(load_config("overopt_orm", variant))
  c = load_config("overopt_orm", "kl")
  assert c.algo.kl_coef > 0 and config_lib.needs_ref(c)
  with c.unlocked():
    c.reward.bootstrap.test_frac = 1.0
  with pytest.raises(ValueError, match=r"config\.reward\.bootstrap has problems"):
    config_lib.validate(c)


@pytest.mark.parametrize(
  "change,message",
  [
    (dict(algo__advantage="grpo"), r"reward\.placement is 'steps' but grpo uses outcome"),
    (dict(reward__bootstrap__problems=0), r"reward\.placement is 'steps'; step rewards come"),
    (dict(reward__bootstrap__kind="step"), r"reward\.bootstrap\.kind is 'step'"),
    (dict(reward__placement="outcome"), r"algo\.advantage is 'grpo_process', which needs step"),
    (dict(reward__independent__problems=8), r"judges score whole completions"),
    (dict(reward__bootstrap__label__num_rollouts=0), r"reward\.bootstrap\.label has"),
  ],
)
def test_process_reward_config_errors_are_one_sentence(change, message):
  c = load_config("prm_shaped_chain", "process")
  config_lib.validate(c)
  config_lib.validate(load_config("prm_shaped_chain", "outcome"))
  with c.unlocked():
    for path, value in change.items():
      *parents, leaf = path.split("__")
      node = c
      for p in parents:
        node = node[p]
      node[leaf] = value
  with pytest.raises(ValueError, match=message):
    config_lib.validate(c)


def _audited(rm_dir, tmp_path, pool=None, **kw):
  from jaxrl_verify import audited_rewards

  options = dict(audit_frac=0.25, checkpoint_dir=str(tmp_path / "online"), seed=0)
  options.update(kw)
  return audited_rewards.AuditedRewards(pool, "math", rewards_lib.Shaping(), rm_dir, **options)


def test_audits_choose_the_most_confident_or_uncertain_eligible_rows(rm_dir, tmp_path):
  proxy_g = np.array([0.9, 0.1, 0.55, 0.99, 0.7, 0.4, 0.2, 0.8], np.float32)
  eligible_g = np.array([1, 1, 1, 0, 1, 1, 1, 1], bool)  # Row 3 was not scored.
  confident = _audited(rm_dir, tmp_path, audit_frac=0.25)
  assert confident.choose(proxy_g, eligible_g).tolist() == [0, 7]  # ceil(0.25 * 8) rows.
  uncertain = _audited(rm_dir, tmp_path, audit_frac=0.25, select="uncertain")
  assert uncertain.choose(proxy_g, eligible_g).tolist() == [2, 5]
  assert confident.choose(proxy_g, np.zeros(8, bool)).tolist() == []
  with pytest.raises(ValueError, match="audit_frac in"):
    _audited(rm_dir, tmp_path, audit_frac=0.0)


def test_online_updates_learn_the_audited_labels_and_checkpoint_exactly(rm_dir, tmp_path):
  # Two wrong answers the RM may like; auditing all rows, each step updates on them.
  texts = ["I have 2 coins.\nSo I have 5 coins.\n\\boxed{5}"] * 2 + [
    "I have 2 coins and get 2 more.\nSo I have 4 coins.\n\\boxed{4}"
  ] * 2
  completions = _completions(texts, ["How many coins do I have?", "And now?"])
  with VerifierPool(num_workers=1) as pool:
    source = _audited(rm_dir, tmp_path, pool, audit_frac=1.0, batch_size=4, learning_rate=3e-3)
    first = source.finish(source.start(completions), completions)
    assert first.metrics["verify/audited_frac"] == 1.0
    assert first.metrics["rm/audit_hard_negative_frac"] == 0.5
    source.save(1)
    saved = jax.tree.map(np.asarray, source.params)
    for _ in range(5):
      last = source.finish(source.start(completions), completions)
  # The wrong answer's score fell, the right one's rose: the verifier's labels were learnt.
  assert last.proxy_g[0] < first.proxy_g[0] and last.proxy_g[2] > first.proxy_g[2]
  assert last.metrics["rm/online_updates"] == 6 and len(source.audits) == 24
  source.restore(1)
  assert source.updates == 1 and len(source.audits) == 4
  for a, b in zip(jax.tree.leaves(source.params), jax.tree.leaves(saved)):
    np.testing.assert_array_equal(np.asarray(a), b)


def test_step_placement_gives_each_steps_prm_probability_and_its_last_policy_token(rm_dir):
  """placement='steps': every step's PRM probability (x rm_weight) and the index of the
  completion token (the policy tokenizer's) that finishes the step's text; the outcome
  reward is the verifier's (x verifier_weight)."""
  texts = [
    "I have 2 coins and get 2 more.\nSo I have 4 coins.\n\\boxed{4}",
    "So I have 5 coins.\n\n\\boxed{5}",
  ]
  completions = _completions(texts, ["How many coins do I have?"])
  _, tok, _, _ = rm_setup.restore(rm_dir)  # A real SentencePiece model as the policy's.
  ids = [tok.encode(t) for t in texts]
  tokens_gt = np.full((2, max(map(len, ids))), tok.pad_id, np.int32)
  for i, row in enumerate(ids):
    tokens_gt[i, : len(row)] = row
  completions = dataclasses.replace(
    completions, tokens_gt=tokens_gt, length_g=np.array([len(r) for r in ids])
  )
  with VerifierPool(num_workers=1) as pool:
    outcome = learned_rewards.LearnedRewards(pool, "math", rewards_lib.Shaping(), rm_dir)
    by_steps = learned_rewards.LearnedRewards(
      pool,
      "math",
      rewards_lib.Shaping(),
      rm_dir,
      placement="steps",
      policy_tokenizer=tok,
      rm_weight=0.5,
      verifier_weight=2.0,
    )
    probs_gs = outcome.score_steps(completions, with_ends=False)[2]
    r = by_steps.finish(by_steps.start(completions), completions)
  np.testing.assert_allclose(r.reward_g, [2.0, 0.0])  # The verifier's, x verifier_weight.
  np.testing.assert_allclose(r.step_reward_gs, 0.5 * probs_gs, rtol=1e-6)
  for i, text in enumerate(texts):
    steps = [s for s in text.split("\n") if s]
    ends = r.step_end_gs[i]
    assert (ends[len(steps) :] == -1).all() and (r.step_reward_gs[i, len(steps) :] == 0).all()
    for step, e in zip(steps, ends[: len(steps)]):
      assert tok.decode(ids[i][: e + 1]).endswith(step)  # The token that completes it ...
      assert not tok.decode(ids[i][:e]).endswith(step)  # ... and not one earlier.
  with pytest.raises(ValueError, match="policy's tokenizer"):
    learned_rewards.LearnedRewards(pool, "math", rewards_lib.Shaping(), rm_dir, placement="steps")
