r"""GRPO on Countdown (reach a target with + - * /), DAPO-style, on a CPU.

A tiny policy, warm-started on worked solutions, is trained with GRPO against the
`countdown` verifier (exact rational arithmetic, each number at most once). The
recipe follows DAPO (Yu et al. 2025) where it applies at this scale:

* clip-higher: eps_low 0.2, eps_high 0.28, so low-probability tokens can still grow;
* token-level loss aggregation (`token_mean` over the whole batch);
* soft overlong punishment: a linear penalty up to -1 over the last `overlong_buffer`
  tokens before `max_new_tokens` (DAPO's 4096 of 20480 tokens is 20%; here 12 of 48);
* dynamic sampling: groups whose 8 rewards are all equal carry no GRPO signal, so they
  are resampled (up to 4 rounds) until the batch holds only informative groups;
* unlike DAPO, a small KL to the reference in the *loss* with the k3 estimator
  (verl's `use_kl_loss=True, kl_loss_type=low_var_kl`, coefficient 1e-3 as in TinyZero's
  Countdown runs): a from-scratch tiny policy drifts easily and the term keeps it honest;
* on-policy: one optimizer step per iteration at lr 2e-4.

Measured on the 2-core CPU (2026-12-03, 200 held-out problems, greedy accuracy / pass@8 /
maj@8 at steps 0, 50, 100, 150, 200):
  this recipe: 0.140 / 0.350 / 0.105 -> 0.155, 0.155, 0.175, 0.185 greedy; pass@8 0.285,
    0.285, 0.290, 0.300; maj@8 0.170 at 200. +4.5 points greedy, pass@8 -5.0 points
    (1401 s; dynamic sampling drew 3.8 rounds a step on average, ~6 s/step).
  the previous recipe (lr 5e-4, 4 minibatches a step, no dynamic sampling): greedy
    0.135 -> 0.155 while pass@8 collapsed 0.345 -> 0.18.
  lr 1e-4, 2 minibatches, KL 5e-3, no dynamic sampling: greedy 0.145 at step 100, pass@8
    0.325 (stopped there: no gain).
So RL here moves greedy accuracy a few points and narrows the sample distribution a little;
it does not yet give the large held-out gain a bigger model would. Part of the reason: the
2,000 train problems are seen three times in 200 steps, after SFT on their worked solutions.

  python -m jaxrl_verify.train --config=configs/grpo_countdown.py --workdir=/tmp/grpo_countdown

`:runlocal` shrinks it to a CPU smoke test of every stage:

  python -m jaxrl_verify.train --config=configs/grpo_countdown.py:runlocal --workdir=/tmp/cd_local
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps = 200

  c.task.name = "countdown"
  c.task.options = mlc.ConfigDict({"size": "small", "difficulty": (1, 2)})
  c.task.max_prompt_len = 64  # The rules sentence is part of every prompt.
  c.tokenizer.vocab_size = 512

  c.model.preset = "tiny"
  c.model.overrides = mlc.ConfigDict(
    {
      "embed_dim": 128,
      "num_layers": 4,
      "num_heads": 4,
      "num_kv_heads": 2,
      "head_dim": 32,
      "mlp_dim": 512,
    }
  )

  c.sft.steps = 300
  c.sft.batch_size = 32
  c.sft.learning_rate = 2e-3
  c.sft.max_len = 128

  c.rollout.prompts_per_step = 32
  c.rollout.group_size = 8
  c.rollout.max_new_tokens = 48
  c.rollout.temperature = 1.0

  c.algo.advantage = "grpo"
  c.algo.loss_hparams.ppo_clip.eps_low = 0.2
  c.algo.loss_hparams.ppo_clip.eps_high = 0.28
  c.algo.aggregation = "token_mean"
  c.algo.kl_coef = 1e-3
  c.algo.kl_estimator = "k3"
  c.algo.kl_placement = "loss"
  c.algo.overlong_buffer = 12
  c.algo.overlong_penalty = 1.0
  c.algo.entropy_coef = 0.0

  c.algo.dynamic_sampling = True
  c.algo.max_resample_rounds = 4

  c.optim.learning_rate = 2e-4
  c.optim.warmup_steps = 10
  c.ppo.epochs = 1
  c.ppo.minibatches = 1  # On-policy: 4 minibatches at lr 5e-4 collapsed pass@8 (docstring).

  c.eval.num_examples = 200
  c.eval.batch_size = 64
  c.eval.k = 8
  c.eval.every = 50
  c.checkpoint_every = 50

  if arg == "runlocal":
    c.total_steps = 3
    c.task.options = mlc.ConfigDict({"size": "tiny", "difficulty": (1,)})
    # A multiple of 128 the tiny corpus supports: the model's vocabulary is the tokenizer's
    # rounded up to 128, and ids past the tokenizer's would be sampled but not decodable.
    c.tokenizer.vocab_size = 384
    c.model.overrides = mlc.ConfigDict({"embed_dim": 32, "num_layers": 1, "mlp_dim": 64})
    c.sft.steps = 4
    c.sft.batch_size = 8
    c.rollout.prompts_per_step = 8
    c.rollout.group_size = 2
    c.rollout.max_new_tokens = 16
    c.algo.overlong_buffer = 4
    c.ppo.minibatches = 2
    c.algo.max_resample_rounds = 2
    c.eval.num_examples = 8
    c.eval.batch_size = 8
    c.eval.k = 2
    c.eval.every = 0
    c.checkpoint_every = 2
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
