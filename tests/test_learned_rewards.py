"""A trained reward model as the RL reward source: its scores are the reward model's own
(recomputed directly), the verifier runs beside it as gold, rows it cannot read are
masked, and a run logs proxy, gold and the hack gap."""

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
