r"""GRPO on GSM8K from Qwen2.5-1.5B, on a TPU v5p-16 slice (8 chips).

Needs, on every host:

* the weights: `python -m jaxrl_verify.models.import_hf /path/to/Qwen2.5-1.5B /data/qwen2p5_1p5b`
  (a local Hugging Face directory; nothing is downloaded);
* nothing more for the tokenizer: `import_hf` carries Qwen's byte-level BPE
  `tokenizer.json` (+ `tokenizer_config.json`) next to the weights, and the run uses it;
* GSM8K's `train.jsonl` and `test.jsonl` (github.com/openai/grade-school-math,
  `grade_school_math/data/`) in `/data/gsm8k` (`config.task.options.manual_dir`).

  python -m jaxrl_verify.train --config=configs/grpo_gsm8k_qwen2p5_1p5b.py \
    --workdir=/mnt/BUCKET/grpo_gsm8k_1p5b \
    --config.model.init_from=/data/qwen2p5_1p5b --config.task.options.manual_dir=/data/gsm8k

Hyperparameters follow verl's GSM8K GRPO example (examples/grpo_trainer/run_qwen2-7b.sh
and run_qwen2_5-3b_gsm8k*: actor lr 1e-6, KL in the loss with `low_var_kl` = k3 at 1e-3,
no entropy bonus, prompt 512 / response 1024 tokens, mini-batch = 1/4 of the batch) with
DAPO's clip-higher (eps_high 0.28) and token-level loss aggregation. The batch is 256
prompts x 8 samples rather than verl's 1024 x 5: the sampler keeps one dense KV cache per
row, and 2048 rows x 1536 slots x 28 layers is ~90 GB of bf16 cache over the slice.

`:runlocal` runs every stage on a CPU in seconds, with stand-ins: the `tiny` preset
(fresh weights, a tokenizer trained on the data, no init_from) and a tiny GSM8K-format
jsonl pair generated from the arithmetic task into WORKDIR/data/manual/ as the run prepares
its data (task option `standin`; loading the config writes nothing), read through the
real GSM8K builder (`####` answers, `<<...>>` calculator notes):

  python -m jaxrl_verify.train --config=configs/grpo_gsm8k_qwen2p5_1p5b.py:runlocal \
    --workdir=/tmp/gsm8k_local

Ahead-of-time check on a CPU (no TPU needed):

  python -m jaxrl_verify.compile_check --config=configs/grpo_gsm8k_qwen2p5_1p5b.py --topology=v5p-16

reported, per v5p chip (95.73 GiB HBM): sampler 16.77 GiB, train step 70.16 GiB:
both fit.

Not measured: the development machine is a 2-core CPU and no TPU slice was available
to this project, so whether this recipe gives a held-out GSM8K gain from RL here is
unknown (verl reports one with the same hyperparameters). Only `:runlocal` has run.
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps = 300  # ~10 epochs of GSM8K's 7473 train problems at 256 prompts/step.

  # v5p-16 = 8 chips. Qwen2.5-1.5B has 2 kv heads, so the tensor axis can be at most 2
  # (k/v projections shard their kv-head dimension over it); it also halves each chip's
  # KV cache during sampling. fsdp takes the other 4 chips: parameters, gradients and
  # Adam moments are ZeRO-3 sharded along `embed` (1536 = 4 x 384), and the batch is
  # split over data x fsdp. On a bigger slice, -1 grows the data axis.
  c.mesh_shape = (-1, 4, 2)

  c.model.preset = "qwen2.5-1.5b"
  c.model.init_from = ""  # Set on the command line (see the docstring).
  # Mixed precision: float32 master weights and Adam moments (lr 1e-6 updates vanish in
  # bf16), bf16 activations and matmuls.
  c.model.param_dtype = "float32"
  c.model.dtype = "bfloat16"
  c.model.remat = "dots"  # Keep matmul outputs, recompute the rest: fits 1536-token rows.

  c.task.name = "gsm8k"
  c.task.options = mlc.ConfigDict({"manual_dir": "/data/gsm8k"})
  c.task.max_prompt_len = 512
  c.task.eval_split = "test"

  c.rollout.prompts_per_step = 256
  c.rollout.group_size = 8
  c.rollout.max_new_tokens = 1024
  c.rollout.temperature = 1.0

  c.verifier.workers = 32  # Host CPU cores per host on v5p; sympy checks are ~ms each.
  c.verifier.timeout_s = 5.0

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
  c.optim.min_lr_ratio = 1.0  # Constant after warm-up, as in verl.
  c.optim.weight_decay = 0.01
  c.optim.grad_clip = 1.0
  c.ppo.epochs = 1
  c.ppo.minibatches = 4  # verl's ppo_mini_batch_size = train_batch_size / 4.
  c.optim.grad_accum_steps = 4  # 128 rows per microbatch: 32 per data x fsdp shard.

  c.eval.every = 25
  c.eval.num_examples = 1319  # All of GSM8K test.
  c.eval.batch_size = 256
  c.eval.k = 8
  c.eval.temperature = 1.0
  c.checkpoint_every = 25

  if arg == "runlocal":
    config_lib.shrink_to_runlocal(c)
    c.rollout.group_size = 2
    c.ppo.minibatches = 2
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
