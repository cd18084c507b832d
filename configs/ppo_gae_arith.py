r"""PPO with a value model and GAE on arithmetic word problems (laptop/CPU scale).

A tiny policy, warm-started by a short supervised phase on worked solutions, is
trained with PPO (clipped surrogate, two epochs over two minibatches). A value model
(the policy's backbone plus a scalar head) gives per-token baselines for GAE; it is
trained alone for the first iterations (critic warm-up) and its loss is clipped
around the sampling-time values. The KL to the frozen reference policy is a per-token
penalty in the reward (k1 = log pi - log pi_ref, as in InstructGPT and verl's
`algorithm.use_kl_in_reward`), not a loss term.

  python -m jaxrl_verify.train --config=configs/ppo_gae_arith.py --workdir=/tmp/ppo_gae_arith

Measured on the 2-core CPU (2026-12-03, 200 held-out problems): RL does NOT give a
held-out gain here. This config: greedy 0.090 -> 0.095 after 100 PPO steps (+0.5, within
the noise of 200 problems), pass@4 0.235 -> 0.205, maj@4 0.06 -> 0.09; 145 s. With a
longer warm start and a weaker KL (`--config.sft.steps=400 --config.total_steps=150
--config.algo.kl_coef=0.01`): greedy 0.185 -> 0.160, pass@4 0.330 -> 0.210 while the train
accuracy rose to ~0.24 (346 s): the policy fits the train prompts and narrows. It stays
as the PPO + GAE + critic reference on a CPU (the machinery is tested against numpy and
sharded runs); the GRPO quickstart is the config that shows a held-out gain.

`:runlocal` shrinks it to a CPU smoke test of every stage (seconds per step):

  python -m jaxrl_verify.train --config=configs/ppo_gae_arith.py:runlocal --workdir=/tmp/ppo_local
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps = 100

  c.task.name = "arithmetic"
  c.task.options = mlc.ConfigDict({"size": "small", "difficulty": (1, 2)})
  c.task.max_prompt_len = 48
  c.tokenizer.vocab_size = 512

  c.model.preset = "mini"

  c.sft.steps = 150
  c.sft.batch_size = 32
  c.sft.learning_rate = 3e-3
  c.sft.max_len = 96

  c.rollout.prompts_per_step = 32
  # PPO needs no group: one sample per prompt would do, but 4 keep the batch as large as
  # the GRPO quickstart's for the same prompt count, so curves are comparable.
  c.rollout.group_size = 4
  c.rollout.max_new_tokens = 36
  c.rollout.temperature = 1.0

  c.algo.advantage = "gae"
  # Episodic, one terminal reward: no discounting (verl's PPO default).
  c.algo.advantage_hparams.gae.gamma = 1.0
  c.algo.advantage_hparams.gae.lam = 0.95  # Policy GAE lambda.
  # VAPO's decoupled GAE: the critic regresses on lambda=1 (Monte-Carlo) returns, which
  # are unbiased for a terminal reward, while the policy uses the lower-variance 0.95.
  c.algo.advantage_hparams.gae.lambda_critic = 1.0
  c.algo.loss_hparams.ppo_clip.eps_low = 0.2
  c.algo.loss_hparams.ppo_clip.eps_high = 0.2  # Symmetric clip: classic PPO.
  c.algo.aggregation = "token_mean"
  c.algo.kl_coef = 0.05
  c.algo.kl_estimator = "k1"
  c.algo.kl_placement = "reward"
  c.algo.value_coef = 0.5
  c.algo.value_clip_eps = 0.2  # Clipped value loss around the sampling-time values.

  c.optim.learning_rate = 5e-4
  c.optim.warmup_steps = 5
  c.ppo.epochs = 2
  c.ppo.minibatches = 2

  c.value.learning_rate = 1e-3  # The critic head starts from zero: it may move faster.
  c.value.warmup_steps = 5  # Critic-only iterations, so GAE starts from sensible values.

  c.eval.num_examples = 200
  c.eval.batch_size = 64
  c.eval.k = 4
  c.checkpoint_every = 25

  if arg == "runlocal":
    c.total_steps = 3
    c.task.options = mlc.ConfigDict({"size": "tiny", "difficulty": (1,)})
    # A multiple of 128 the tiny corpus supports: the model's vocabulary is the tokenizer's
    # rounded up to 128, and ids past the tokenizer's would be sampled but not decodable.
    c.tokenizer.vocab_size = 384
    c.task.max_prompt_len = 64  # The smaller vocabulary spends more tokens per prompt.
    c.model.preset = "tiny"
    c.model.overrides = mlc.ConfigDict({"embed_dim": 32, "num_layers": 1, "mlp_dim": 64})
    c.sft.steps = 4
    c.sft.batch_size = 8
    c.rollout.prompts_per_step = 8
    c.rollout.group_size = 2
    c.rollout.max_new_tokens = 12
    c.value.warmup_steps = 1
    c.eval.num_examples = 8
    c.eval.batch_size = 8
    c.eval.k = 2
    c.checkpoint_every = 2
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
