r"""Seconds per RL iteration: ours (JAX, the trainer's modules) vs TRL's GRPOTrainer.

  python benchmarks/rl_step.py [--slow-verifier-ms MS] [--peer] [--iters N]

One iteration = GRPO on the arithmetic task with the `bench` model preset (4 layers,
d=256, vocab 512): 8 prompts x 8 samples, exactly 32 completion tokens each (EOS is
ignored: `Sampler(eos_id=None)`), math verification of all 64 completions, reference
logprobs (KL k3 in the loss, beta 0.04), one optimizer step on the whole batch. Ours
is built from the same functions `train.py` wires (`experience.Experience`, the jitted
update from `setup_lib.loss_config`), so the figure is the trainer's.

`--slow-verifier-ms MS` makes every verification sleep MS ms first (`math_slow` in
`benchmarks/slow_verifier.py`): our pool runs `--workers` of them at once while the
device computes reference logprobs; TRL calls its reward function serially, as it does.

`--reward-model orm|prm` measures, in the same run, our step once more with a learned
reward model as the reward source (`learned_rewards.LearnedRewards`, the verifier beside
it as gold): a `bench`-sized RM on the policy's backbone (one training step on the task's
own solutions, so its weights are a real RM's, untrained), scoring all 64 completions;
`prm` places every step's score on its last token (`reward.placement='steps'`, process
GRPO). Prints the RM-sourced system and `rm_overhead`, the extra fraction of the step.

`--peer` measures TRL's GRPOTrainer (PyTorch, CPU) on identical work: a random
LlamaForCausalLM of the bench shape, 64 completions x 32 tokens (min_new_tokens=32), the
same math verifier (and sleep) in its reward function, beta 0.04, fp32 (TRL defaults to
bf16), no gradient checkpointing. Identical work means the same results, not the same
FLOPs: ours encodes each group's prompt once (sampling, reference, update), TRL once per
sample. Both run in this process one after the other; the machine is shared, so only
the ratios are meaningful. Prints one JSON object per system, then the ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # So pool workers find slow_verifier.

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from jaxrl_verify import config_lib, experience, learned_rewards, reward_bootstrap, setup_lib  # noqa: E402
from jaxrl_verify import rewards as rewards_lib  # noqa: E402
from jaxrl_verify import sharding as shd  # noqa: E402
from jaxrl_verify.data import pipeline, tasks  # noqa: E402
from jaxrl_verify.models import config as model_config  # noqa: E402
from jaxrl_verify.models import hf  # noqa: E402
from jaxrl_verify.models import io as model_io  # noqa: E402
from jaxrl_verify.models.transformer import Transformer  # noqa: E402
from jaxrl_verify.process import rm_trainer  # noqa: E402
from jaxrl_verify.rl import update as update_lib  # noqa: E402
from jaxrl_verify.sampler import (  # noqa: E402
  Sampler,
  SamplingParams,
  jsonl,  # noqa: E402
)
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer  # noqa: E402
from jaxrl_verify.verifiers.pool import VerifierPool  # noqa: E402

PROMPTS, GROUP, NEW_TOKENS, PROMPT_LEN, BETA = 8, 8, 32, 48, 0.04


def bench_config():
  """The trainer config this benchmark stands for (GRPO, KL k3 in the loss)."""
  c = config_lib.base_config()
  c.model.preset = "bench"
  c.task.options = {"size": "small", "difficulty": (1, 2)}
  c.task.max_prompt_len = PROMPT_LEN
  c.rollout.prompts_per_step, c.rollout.group_size = PROMPTS, GROUP
  c.rollout.max_new_tokens = NEW_TOKENS
  c.algo.advantage, c.algo.kl_coef, c.algo.kl_estimator = "grpo", BETA, "k3"
  c.algo.loss_hparams.ppo_clip.eps_high = 0.2
  c.algo.tis_cap = 0.0
  c.optim.learning_rate = 1e-6
  c.total_steps = 1000
  return c


def prepare_data(workdir: str):
  task = tasks.get_task("arithmetic", size="small", difficulty=(1, 2))
  data_dir = os.path.join(workdir, "data")
  tok = SentencePieceTokenizer.train(pipeline.texts_for_tokenizer(task, data_dir), 512, workdir)
  return task, data_dir, tok


def train_bench_rm(kind: str, workdir: str, task, data_dir, tok, cfg, policy) -> str:
  """A `bench`-sized RM of `kind` on the policy's backbone, one step trained on the task's
  solutions (timing needs a real RM's forward, not a good one); returns its workdir."""
  rm_dir = os.path.join(workdir, f"rm_{kind}")
  policy_dir, labelled = os.path.join(rm_dir, "policy"), os.path.join(rm_dir, "labelled")
  model_io.save_model(policy_dir, cfg, policy, tokenizer=tok)
  pairs = itertools.islice(pipeline.sft_examples(task, "train", data_dir=data_dir), 64)
  records = []
  for i, (prompt, demo) in enumerate(pairs):
    steps = [line for line in demo.split("\n") if line.strip()]
    records.append({"prompt": prompt, "steps": steps, "labels": [bool(i % 2)] * len(steps)})
  os.makedirs(labelled, exist_ok=True)
  for split in ("train", "test"):
    jsonl.write_jsonl_atomically(os.path.join(labelled, f"{split}.jsonl"), records)
  config = bench_config()
  spec = config.reward.bootstrap
  spec.kind = kind
  spec.rm.total_steps = 1
  spec.rm.rm.max_len = 160  # bos + prompt (<= 48) + 32 completion tokens + separators.
  spec.rm.rm.max_steps = NEW_TOKENS  # A 32-token completion has at most 32 lines.
  spec.rm.optim.batch_size = 8
  spec.rm.eval.batch_size = 64  # The 64 completions of a step in one forward.
  spec.rm.eval.every = 1
  rm_trainer.train_rm(reward_bootstrap.rm_run_config(config, spec, labelled, policy_dir), rm_dir)
  return rm_dir


def run_ours(args, task, data_dir, tok, reward_model: str = "") -> dict:
  config = bench_config()
  mesh = shd.make_mesh(config.mesh_shape)
  config_lib.validate(config, mesh)
  cfg = model_config.get_preset("bench", vocab_size=-(-tok.vocab_size // 128) * 128)
  rules = tuple(config.sharding_rules)
  graphdef, policy, _ = shd.create_sharded(lambda: Transformer(cfg, rngs=nnx.Rngs(0)), mesh, rules)
  tx = setup_lib.optimizers(config).policy
  state = update_lib.TrainState(
    step=jnp.zeros((), jnp.int32),
    policy=policy,
    policy_opt=jax.jit(tx.init)(policy),
    ref=jax.tree.map(jnp.copy, policy),
    value=None,
    value_opt=None,
    rng=jax.random.PRNGKey(0),
  )
  # Scalars (step, optimizer counters) replicated on the mesh as the update returns them;
  # otherwise the second iteration compiles the update again.
  state = jax.tree.map(
    lambda x: jax.device_put(x, shd.replicated(mesh)) if x.ndim == 0 else x, state
  )
  sampler = Sampler(
    graphdef,
    cfg,
    max_prompt_len=PROMPT_LEN,
    max_new_tokens=NEW_TOKENS,
    eos_id=None,  # Always NEW_TOKENS tokens: identical work to the peer.
    pad_id=tok.pad_id,
    mesh=mesh,
  )
  update_fn = jax.jit(
    update_lib.make_update_fn(graphdef, None, tx, None, setup_lib.loss_config(config)),
    donate_argnums=0,
  )
  prompts = pipeline.PromptIterator(
    task,
    "train",
    batch_size=PROMPTS,
    tokenizer=tok,
    max_prompt_len=PROMPT_LEN,
    seed=0,
    data_dir=data_dir,
  )
  verifier, imports = "math", ()
  if args.slow_verifier_ms:
    verifier, imports = "math_slow", ("slow_verifier",)
  pool = VerifierPool(num_workers=args.workers, imports=imports, cache_size=0)
  pool.map([{"verifier": verifier, "completion": "\\boxed{1}", "reference": "1"}] * args.workers)
  source = None
  if reward_model:
    rm_dir = train_bench_rm(reward_model, args.workdir, task, data_dir, tok, cfg, policy)
    placement = "steps" if reward_model == "prm" else "outcome"
    source = learned_rewards.LearnedRewards(
      pool, verifier, rewards_lib.Shaping(), rm_dir, placement=placement, policy_tokenizer=tok
    )
  collector = experience.Experience(
    experience.ExperienceConfig(
      group_size=GROUP,
      verifier=verifier,
      advantage="grpo_process" if reward_model == "prm" else "grpo",
      needs_ref=True,
      kl_coef=BETA,
      kl_estimator="k3",
    ),
    sampler=sampler,
    sampling=SamplingParams(temperature=1.0),
    pool=pool,
    tokenizer=tok,
    mesh=mesh,
    policy_graphdef=graphdef,
    value_graphdef=None,
    reward_source=source,
  )
  scorer = collector.scorer

  rows = []
  for i in range(args.warmup + args.iters):
    batch_in = next(prompts)
    if args.slow_verifier_ms:
      batch_in.fields[:] = [{"sleep_ms": args.slow_verifier_ms}] * len(batch_in.fields)
    t0 = time.perf_counter()
    rng = jax.random.fold_in(jax.random.PRNGKey(1), i)
    one = collector.collect(state, batch_in, rng)
    batch, m = one.batch, one.metrics
    t1 = time.perf_counter()
    state, um = update_fn(state, batch)
    jax.device_get(um)
    t2 = time.perf_counter()
    print(
      f"ours{reward_model and ' + ' + reward_model} iteration {i}: {t2 - t0:.3f} s",
      file=sys.stderr,
      flush=True,
    )
    rows.append(
      {
        "step": t2 - t0,
        "sample": m["time/sample"],
        "verify": m["time/verify"],
        "assemble": t1 - t0 - m["time/sample"] - m["time/verify"],
        "update": t2 - t1,
      }
    )
  # The reference forward alone (in the step it overlaps verification): blocked timing.
  ref_times = []
  for _ in range(5):
    t0 = time.perf_counter()
    jax.block_until_ready(
      scorer.ref_logp(
        state.ref,
        batch.prompt_gp,
        batch.prompt_mask_gp,
        batch.completion_gt,
        batch.completion_mask_gt,
      )
    )
    ref_times.append(time.perf_counter() - t0)
  pool.close()
  measured = rows[args.warmup :]
  med = {k: statistics.median(r[k] for r in measured) for k in measured[0]}
  return {
    "system": "jaxrl_verify" + (f"+{reward_model}" if reward_model else ""),
    "s_per_step": med["step"],
    "breakdown_s": {
      "sample": med["sample"],
      # Waiting for the pool; the reference forward is dispatched (async) meanwhile.
      "verify": med["verify"],
      # The reference forward timed alone; in the step, whatever of it outlasts
      # verification lands in the update's wait.
      "reference_alone": statistics.median(ref_times),
      "advantages_and_batch": med["assemble"],
      "update_incl_reference_tail": med["update"],
    },
    "iters": args.iters,
    "workers": args.workers,
    "slow_verifier_ms": args.slow_verifier_ms,
    "devices": f"{mesh.size} x {jax.devices()[0].platform}",
    "completion_tokens": PROMPTS * GROUP * NEW_TOKENS,
  }


def run_trl(args, task, data_dir, workdir) -> dict:
  import datasets
  import tokenizers
  import torch
  import transformers
  from trl import GRPOConfig, GRPOTrainer

  from jaxrl_verify.verifiers import base

  examples = task.data_source("train", data_dir)
  n = PROMPTS * (args.warmup + args.peer_iters + 2)
  rows = [examples[i] for i in range(n)]
  prompts = [task.format_prompt(ex) for ex in rows]
  # A byte-level BPE tokenizer of the same vocabulary size, trained on the same corpus.
  bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
  bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  bpe.decoder = tokenizers.decoders.ByteLevel()
  trainer = tokenizers.trainers.BpeTrainer(
    vocab_size=512,
    special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
    initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
  )
  bpe.train_from_iterator(pipeline.texts_for_tokenizer(task, data_dir), trainer)
  hf_tok = transformers.PreTrainedTokenizerFast(
    tokenizer_object=bpe,
    pad_token="<pad>",
    bos_token="<s>",
    eos_token="</s>",
    unk_token="<unk>",
    padding_side="left",
  )
  torch.manual_seed(0)
  # The bench shape through the exporter's mapping (`hf.to_hf_config`), as ours.
  bench = model_config.get_preset("bench", vocab_size=512)
  model = transformers.LlamaForCausalLM(
    transformers.LlamaConfig(
      **{
        **hf.to_hf_config(bench, "llama"),
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
      }
    )
  )
  # TRL builds its reference model from the policy's path: save the random model first.
  model_dir = os.path.join(workdir, "trl_model")
  model.save_pretrained(model_dir)
  hf_tok.save_pretrained(model_dir)
  math_verify = base.get("math")
  sleep_s = args.slow_verifier_ms / 1000.0

  def reward(completions, answer, **_):
    out = []
    for text, ref in zip(completions, answer):
      if sleep_s:
        time.sleep(sleep_s)
      out.append(math_verify(text, ref).reward)
    return out

  times: list[float] = []

  class Timer(transformers.TrainerCallback):
    def on_step_begin(self, *a, **k):
      self.t0 = time.perf_counter()

    def on_step_end(self, *a, **k):
      times.append(time.perf_counter() - self.t0)
      print(f"trl iteration {len(times) - 1}: {times[-1]:.3f} s", file=sys.stderr, flush=True)

  config = GRPOConfig(
    output_dir=os.path.join(workdir, "trl"),
    per_device_train_batch_size=PROMPTS * GROUP,
    num_generations=GROUP,
    max_completion_length=NEW_TOKENS,
    temperature=1.0,
    beta=BETA,
    epsilon=0.2,
    learning_rate=1e-6,
    max_steps=args.warmup + args.peer_iters,
    use_cpu=True,
    gradient_checkpointing=False,
    # fp32 like ours. TRL's configs default to bf16=True, which on a CPU without native
    # bf16 matmuls runs autocast kernels ~30x slower: not the peer's real speed.
    bf16=False,
    fp16=False,
    logging_steps=10_000,
    save_strategy="no",
    report_to="none",
    generation_kwargs={"min_new_tokens": NEW_TOKENS},
    dataloader_num_workers=0,
    seed=0,
  )
  trainer = GRPOTrainer(
    model=model_dir,
    reward_funcs=reward,
    args=config,
    processing_class=hf_tok,
    train_dataset=datasets.Dataset.from_dict(
      {"prompt": prompts, "answer": [str(task.reference(ex)) for ex in rows]}
    ),
    callbacks=[Timer()],
  )
  trainer.train()
  measured = times[args.warmup :]
  return {
    "system": "trl.GRPOTrainer",
    "s_per_step": statistics.median(measured),
    "iters": len(measured),
    "slow_verifier_ms": args.slow_verifier_ms,
    "torch_threads": torch.get_num_threads(),
    "versions": {"trl": __import__("trl").__version__, "torch": torch.__version__},
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--slow-verifier-ms", type=float, default=0.0)
  p.add_argument("--peer", action="store_true", help="Also measure TRL's GRPOTrainer.")
  p.add_argument("--iters", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--peer-iters", type=int, default=10, help="Measured TRL iterations.")
  p.add_argument("--workers", type=int, default=8, help="Verifier pool workers (ours).")
  p.add_argument("--peer-only", action="store_true", help="Measure only TRL (debugging).")
  p.add_argument(
    "--reward-model",
    choices=("orm", "prm"),
    default="",
    help="Also measure our step with a learned reward model as the reward source.",
  )
  args = p.parse_args()
  if args.iters < 1 or args.warmup < 1:
    p.error("--iters and --warmup must be at least 1.")
  workdir = args.workdir = tempfile.mkdtemp(prefix="rl_step_bench_")
  task, data_dir, tok = prepare_data(workdir)
  if args.peer_only:
    print(json.dumps(run_trl(args, task, data_dir, workdir)), flush=True)
    return
  ours = run_ours(args, task, data_dir, tok)
  print(json.dumps(ours), flush=True)
  if args.reward_model:
    with_rm = run_ours(args, task, data_dir, tok, args.reward_model)
    print(json.dumps(with_rm), flush=True)
    overhead = with_rm["s_per_step"] / ours["s_per_step"] - 1
    print(json.dumps({"rm_overhead": overhead, "reward_model": args.reward_model}), flush=True)
  if args.peer:
    peer = run_trl(args, task, data_dir, workdir)
    print(json.dumps(peer), flush=True)
    print(json.dumps({"speedup_vs_trl": peer["s_per_step"] / ours["s_per_step"]}), flush=True)


if __name__ == "__main__":
  main()
