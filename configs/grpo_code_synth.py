r"""GRPO on synthetic code tasks, rewarded by tests run in the bubblewrap sandbox.

A tiny policy is warm-started on the reference solutions, then trained with GRPO
against the `code` verifier on the *visible* asserts of each task. The verifier also
runs the task's *hidden* asserts and reports them as `hidden_reward`, logged next to
the reward as `reward/hidden_mean`: the gap between the two is how much the policy
overfits (or games) the tests it can see. Needs bubblewrap (`apt-get install
bubblewrap`); the sandbox sets its own per-program deadline (10 s), the pool's is
longer so a slow program is judged by the sandbox (`spins`/`sleeps`, reward 0) and
never masked as a pool timeout.

  python -m jaxrl_verify.train --config=configs/grpo_code_synth.py --workdir=/tmp/grpo_code

Measured on the 2-core CPU (2026-12-03, this config, 100 held-out tasks judged on their
hidden tests): greedy accuracy 0.73 -> 0.78 after 200 GRPO steps (+5 points, within the
noise of 100 tasks), pass@4 0.84 -> 0.80, maj@4 0.80 -> 0.78. Training reward on the
visible asserts 0.55 -> 0.81 (mean of the first / last 20 steps) and on the hidden ones
0.54 -> 0.80: no gap opened between them, so the policy did not game the tests it sees.
3268 s, with other jobs on the cores for much of it.

`:runlocal` shrinks it to a CPU smoke test of every stage:

  python -m jaxrl_verify.train --config=configs/grpo_code_synth.py:runlocal \
    --workdir=/tmp/code_local
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps = 200

  c.task.name = "code_synthetic"
  c.task.options = mlc.ConfigDict({"size": "small"})
  c.task.max_prompt_len = 256  # Prompts quote the visible asserts.
  c.tokenizer.vocab_size = 1024

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
  c.sft.max_len = 384

  c.rollout.prompts_per_step = 16
  c.rollout.group_size = 8
  c.rollout.max_new_tokens = 128
  c.rollout.temperature = 1.0

  c.verifier.workers = 2
  c.verifier.timeout_s = 60.0  # Longer than the sandbox's own deadline (see above).

  c.algo.advantage = "grpo"
  c.algo.loss_hparams.ppo_clip.eps_low = 0.2
  c.algo.loss_hparams.ppo_clip.eps_high = 0.28
  c.optim.learning_rate = 5e-4
  c.optim.warmup_steps = 5
  c.ppo.minibatches = 2

  c.eval.num_examples = 100
  c.eval.batch_size = 32
  c.eval.k = 4
  c.checkpoint_every = 50

  if arg == "runlocal":
    c.total_steps = 2
    c.task.options = mlc.ConfigDict({"size": "tiny"})
    c.tokenizer.vocab_size = 512
    c.model.overrides = mlc.ConfigDict({})
    c.sft.steps = 5
    c.sft.batch_size = 8
    c.rollout.prompts_per_step = 8
    c.rollout.group_size = 2
    c.rollout.max_new_tokens = 32
    c.ppo.minibatches = 1
    c.eval.num_examples = 8
    c.eval.batch_size = 8
    c.eval.k = 1
    c.checkpoint_every = 2
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
