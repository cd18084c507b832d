r"""GRPO on writing simulators from Qwen2.5-1.5B, on a TPU v5p-16 slice (8 chips).

Needs, on every host, the weights imported once (a local Hugging Face directory; nothing
is downloaded; `import_hf` carries Qwen's tokenizer next to the weights):

  python -m jaxrl_verify.models.import_hf /path/to/Qwen2.5-1.5B /data/qwen2p5_1p5b
  python -m jaxrl_verify.train --config=configs/grpo_simulator_qwen2p5_1p5b.py \
    --workdir=/mnt/BUCKET/grpo_simulator_1p5b --config.model.init_from=/data/qwen2p5_1p5b

The `simulators` task on all six systems (damped spring, projectile with drag,
Lotka-Volterra, bouncing ball, elementary cellular automaton, 1-D heat equation), two
observed trajectories of 8 steps per prompt, the stochastic variant (observation noise
0.05 on the shown states; the held-out truth stays noiseless), 20000 train problems. The
`simulator` verifier runs each program in the bubblewrap sandbox on 5 held-out initial
states for 20 steps (about 30 ms a program, mostly sandbox start-up:
`benchmarks/simulator_verifier.py`), so 32 pool workers per host keep up with 1024
completions a step. No warm start: an instruction-following base model writes a `step`
function from the prompt; the reward teaches it to fit the constants. Hyperparameters as
in `configs/grpo_gsm8k_qwen2p5_1p5b.py` (verl's GRPO recipe with DAPO's clip-higher), with
longer prompts (2048 tokens: the heat grid's trajectories) and 768 new tokens for the program.

Ahead-of-time check on a CPU (no TPU needed):

  python -m jaxrl_verify.compile_check --config=configs/grpo_simulator_qwen2p5_1p5b.py \
    --topology=v5p-16

reported (2026-12-05), per v5p chip (95.73 GiB HBM): sampler 18.59 GiB, train step 47.93 GiB:
both fit.

Not measured: no TPU slice was available to this project; only `:runlocal` (every stage
on a CPU in seconds, a tiny fresh model) and the compile check have run.
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps = 200
  c.mesh_shape = (-1, 4, 2)  # As the GSM8K config: Qwen2.5-1.5B has 2 kv heads.

  c.model.preset = "qwen2.5-1.5b"
  c.model.init_from = ""  # Set on the command line (see the docstring).
  c.model.param_dtype = "float32"
  c.model.dtype = "bfloat16"
  c.model.remat = "dots"

  c.task.name = "simulators"
  c.task.options = mlc.ConfigDict({"size": "default", "noise": 0.05})
  c.task.max_prompt_len = 2048  # Qwen writes a digit per token: the heat grid's prompts.
  c.task.eval_split = "test"

  c.rollout.prompts_per_step = 128
  c.rollout.group_size = 8
  c.rollout.max_new_tokens = 768
  c.rollout.temperature = 1.0

  c.verifier.workers = 32
  c.verifier.timeout_s = 60.0  # Longer than the sandbox's own deadline (10 s).

  c.algo.advantage = "grpo"
  c.algo.loss_hparams.ppo_clip.eps_low = 0.2
  c.algo.loss_hparams.ppo_clip.eps_high = 0.28
  c.algo.aggregation = "token_mean"
  c.algo.kl_coef = 1e-3
  c.algo.kl_estimator = "k3"
  c.algo.kl_placement = "loss"
  c.algo.entropy_coef = 0.0

  c.optim.learning_rate = 1e-6
  c.optim.warmup_steps = 10
  c.optim.min_lr_ratio = 1.0
  c.optim.weight_decay = 0.01
  c.optim.grad_clip = 1.0
  c.ppo.epochs = 1
  c.ppo.minibatches = 4
  c.optim.grad_accum_steps = 4

  c.eval.every = 25
  c.eval.num_examples = 600
  c.eval.batch_size = 128
  c.eval.k = 4
  c.eval.temperature = 1.0
  c.checkpoint_every = 25

  if arg == "runlocal":
    config_lib.shrink_to_runlocal(c)
    # The low-dimensional systems and one shown trajectory: prompts a tiny model can hold.
    c.task.options = mlc.ConfigDict(
      {
        "size": "tiny",
        "noise": 0.05,
        "systems": ("spring", "lotka_volterra", "bouncing_ball"),
        "shown_trajectories": 1,
        "shown_steps": 6,
      }
    )
    c.task.max_prompt_len = 768
    c.tokenizer.vocab_size = 512
    c.rollout.group_size = 2
    c.ppo.minibatches = 2
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
