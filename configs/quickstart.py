r"""Quickstart: RL from verifiable rewards on arithmetic word problems, on a laptop CPU.

Trains a sentencepiece tokenizer on the task corpus, warm-starts a tiny policy with
a short supervised phase on *imperfect* demonstrations (60% of them box a wrong
number after correct working, `sft.box_noise`), then runs GRPO with the sympy math
verifier. The warm-started policy has learnt to compute but boxes the wrong value
more often than not, so greedy decoding is mostly wrong; RL on the verifier's reward
alone removes the habit. `eval/accuracy` (greedy, 200 held-out problems) is logged
before the first and after the last RL step.

Measured on the 2-core development CPU (2026-12-02, from a fresh clone): eval/accuracy
0.26 after the warm start, 0.685 after 150 GRPO steps (+42.5 points from RL alone);
pass@4 0.66 -> 0.725; 113 s end to end (tokenizer, data, warm start, two evaluations, RL),
3 min 1 s with the pip install. The code before the set-up refactor gives the same
metrics bit for bit on this machine; an earlier machine of the same kind gave 0.265 ->
0.83 (pass@4 0.655 -> 0.85) in 1 min 28 s: float rounding moves the trajectory.
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps = 150

  c.task.name = "arithmetic"
  c.task.options = mlc.ConfigDict({"size": "small", "difficulty": (1,)})
  c.task.max_prompt_len = 48
  c.tokenizer.vocab_size = 512

  c.model.preset = "mini"

  c.sft.steps = 400
  c.sft.batch_size = 32
  c.sft.learning_rate = 3e-3
  c.sft.max_len = 96
  c.sft.box_noise = 0.6

  c.rollout.prompts_per_step = 16
  c.rollout.group_size = 8
  c.rollout.max_new_tokens = 36
  c.rollout.temperature = 1.0

  c.algo.advantage = "grpo"
  c.algo.loss_hparams.ppo_clip.eps_low = 0.2
  c.algo.loss_hparams.ppo_clip.eps_high = 0.28
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 5
  c.ppo.epochs = 1
  c.ppo.minibatches = 2

  c.eval.num_examples = 200
  c.eval.batch_size = 64
  c.eval.k = 4
  c.checkpoint_every = 20

  if arg == "runlocal":
    c.total_steps = 4
    c.task.options = mlc.ConfigDict({"size": "tiny", "difficulty": (1,)})
    c.sft.steps = 10
    c.sft.batch_size = 16
    c.rollout.prompts_per_step = 8
    c.rollout.group_size = 4
    c.rollout.max_new_tokens = 16
    c.eval.num_examples = 16
    c.eval.batch_size = 16
    c.eval.k = 2
    c.checkpoint_every = 2
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
