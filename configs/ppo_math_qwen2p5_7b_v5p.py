r"""PPO with a critic (GAE) on MATH from Qwen2.5-7B, on a TPU v5p-64 slice (32 chips).

Needs, on every host:

* the weights: `python -m jaxrl_verify.models.import_hf /path/to/Qwen2.5-7B /data/qwen2p5_7b`
  (a local Hugging Face directory; nothing is downloaded);
* nothing more for the tokenizer: `import_hf` carries Qwen's byte-level BPE
  `tokenizer.json` (+ `tokenizer_config.json`) next to the weights, and the run uses it;
* MATH (Hendrycks et al.): the `train/` and `test/` folders of per-problem JSON files, or
  `train.jsonl` / `test.jsonl`, in `/data/math` (`config.task.options.manual_dir`).

  python -m jaxrl_verify.train --config=configs/ppo_math_qwen2p5_7b_v5p.py \
    --workdir=/mnt/BUCKET/ppo_math_7b \
    --config.model.init_from=/data/qwen2p5_7b --config.task.options.manual_dir=/data/math

Hyperparameters follow verl's PPO examples (examples/ppo_trainer/run_qwen2-7b_*.sh,
run_deepseek7b_llm.sh: actor lr 1e-6, critic lr 1e-5, KL to the reference *in the reward*
at 1e-3 with the k1 estimator (`kl_ctrl`, `kl_penalty=kl`), gamma = 1, value clip 0.5,
mini-batch = 1/4 of the batch, one sample per prompt) and VAPO (Yue et al. 2025) for the
critic: decoupled GAE (policy lambda 0.95, critic lambda 1.0), clip-higher (0.28), and
value pre-training before the policy moves (VAPO: 50 steps; here 20).

`:runlocal` runs every stage on a CPU in seconds, with stand-ins: the `tiny` preset
(fresh weights, a tokenizer trained on the data, no init_from) and a tiny MATH-format
jsonl pair (problem / solution with `\boxed{}` / level / type) generated from the
arithmetic task into WORKDIR/data/manual/ as the run prepares its data (task option
`standin`; loading the config writes nothing), read through the real MATH builder:

  python -m jaxrl_verify.train --config=configs/ppo_math_qwen2p5_7b_v5p.py:runlocal \
    --workdir=/tmp/math_local

Ahead-of-time check on a CPU (no TPU needed):

  python -m jaxrl_verify.compile_check --config=configs/ppo_math_qwen2p5_7b_v5p.py --topology=v5p-64

reported, per v5p chip (95.73 GiB HBM): sampler 29.92 GiB, train step 43.42 GiB:
both fit.

Not measured: the development machine is a 2-core CPU and no TPU slice was available
to this project, so whether this recipe gives a held-out MATH gain from RL here is
unknown. Only `:runlocal` (and `compile_check` for the slice's shapes) has run.
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps = 500  # ~68 epochs of MATH's 7500 train problems would be 500 x 1024.

  # v5p-64 = 32 chips (95 GB HBM each). tensor = 4: Qwen2.5-7B has 28 query and 4 kv
  # heads, so 4 is the largest size dividing both (and mlp 18944, vocab 152064); it keeps
  # the 4 kv heads one per chip in the sampler's KV cache. fsdp = 8 shards every weight
  # along `embed` (3584 = 8 x 448). State per chip: policy + ref + critic in float32
  # (3 x 30 GB) and two Adam states (4 x 30 GB) = 210 GB / 32 = ~6.6 GB, leaving room for
  # the KV cache (1024 rows x 3072 slots x 28 layers x 4 kv x 128 x 2 x 2 B = 180 GB
  # / 32 = 5.6 GB) and activations. data = -1 (1 here) grows on bigger slices.
  c.mesh_shape = (-1, 8, 4)

  c.model.preset = "qwen2.5-7b"
  c.model.init_from = ""  # Set on the command line (see the docstring).
  c.model.param_dtype = "float32"  # Master weights and Adam moments in float32.
  c.model.dtype = "bfloat16"  # Activations and matmuls.
  c.model.remat = "full"  # 3072-token rows through 28 layers of a 7B: recompute blocks.

  c.task.name = "math"
  c.task.options = mlc.ConfigDict({"manual_dir": "/data/math"})
  c.task.max_prompt_len = 1024
  c.task.eval_split = "test"

  c.rollout.prompts_per_step = 1024
  c.rollout.group_size = 1  # PPO: the critic is the baseline, no group needed.
  c.rollout.max_new_tokens = 2048
  c.rollout.temperature = 1.0

  c.verifier.workers = 64  # MATH answers can be slow for sympy; ~200 v5p host cores.
  c.verifier.timeout_s = 10.0

  c.algo.advantage = "gae"
  c.algo.advantage_hparams.gae.gamma = 1.0
  c.algo.advantage_hparams.gae.lam = 0.95
  c.algo.advantage_hparams.gae.lambda_critic = 1.0
  c.algo.loss_hparams.ppo_clip.eps_low = 0.2
  c.algo.loss_hparams.ppo_clip.eps_high = 0.28
  c.algo.aggregation = "token_mean"
  c.algo.kl_coef = 1e-3
  c.algo.kl_estimator = "k1"
  c.algo.kl_placement = "reward"
  c.algo.value_coef = 1.0  # Separate critic optimizer: the coefficient only scales its loss.
  c.algo.value_clip_eps = 0.5

  c.optim.learning_rate = 1e-6
  c.optim.warmup_steps = 10
  c.optim.min_lr_ratio = 1.0
  c.optim.weight_decay = 0.01
  c.optim.grad_clip = 1.0
  c.ppo.epochs = 1
  c.ppo.minibatches = 4  # 256 rows per policy update, as verl's ppo_mini_batch_size.
  c.optim.grad_accum_steps = 4  # 64 rows per microbatch: 8 per data x fsdp shard.

  c.value.learning_rate = 1e-5
  c.value.warmup_steps = 20

  c.eval.every = 25
  c.eval.num_examples = 5000  # All of MATH test (or MATH-500 if that is the test file).
  c.eval.batch_size = 256
  c.eval.k = 4
  c.eval.temperature = 1.0
  c.checkpoint_every = 25

  if arg == "runlocal":
    config_lib.shrink_to_runlocal(c)
    c.verifier.timeout_s = 5.0
    c.ppo.minibatches = 1
    c.value.learning_rate = 1e-3
    c.value.warmup_steps = 1
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
