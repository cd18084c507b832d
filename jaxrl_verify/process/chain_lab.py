"""The process-supervision lab bench: a policy and its sampler (`Bench`), the policy's own
solutions to a task's problems, and the chains task's solutions with known step labels.

`warm_started` builds a `mini` policy warm-started on correct chains; `bench_from` wraps a
saved policy (`models.io.save_model`, any task). The chains ground truth
(`chains.step_labels`) is returned next to held-out solutions to *measure* labels and
reward models; nothing here trains on it.
"""

from __future__ import annotations

import dataclasses
import tempfile

import jax
import numpy as np
from flax import nnx

from jaxrl_verify import sft
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import chains, pipeline, tasks
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.process import label
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.sampler import Sampler, SamplingParams
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer


@dataclasses.dataclass
class Bench:
  """Attributes: task, data_dir, tokenizer, cfg (model config), graphdef, state (policy
  parameters, warm-started), mesh, sampler (whole completions, stopping at EOS)."""

  task: tasks.Task
  data_dir: str
  tokenizer: SentencePieceTokenizer
  cfg: object
  graphdef: object
  state: object
  mesh: object
  sampler: Sampler


LINES = steps_lib.step_format("lines")


def chains_task(levels, *, num_train: int, num_test: int, seed: int) -> tasks.Task:
  """The chains task at `levels` (chain lengths) with its split sizes."""
  return tasks.get_task(
    "chains", num_train=num_train, num_test=num_test, difficulty=tuple(levels), seed=seed
  )


def warm_started(
  task: tasks.Task,
  root: str | None = None,
  *,
  sft_steps: int,
  seed: int = 0,
  preset: str = "mini",
  vocab_size: int = 320,
  max_prompt_len: int = 160,
  max_new_tokens: int = 48,
) -> Bench:
  """A fresh `preset` policy warm-started on the worked solutions of `task`'s train split
  (correct chains), with a SentencePiece tokenizer trained on it; the task's data and the
  tokenizer live in `root` (a fresh temporary directory by default)."""
  root = root or tempfile.mkdtemp(prefix="chain_lab_")
  tok = SentencePieceTokenizer.train(pipeline.texts_for_tokenizer(task, root), vocab_size, root)
  cfg = get_preset(preset, vocab_size=-(-vocab_size // 128) * 128, num_valid_tokens=tok.vocab_size)
  mesh = shd.make_mesh((-1, 1, 1))
  graphdef, state, _ = shd.create_sharded(lambda: Transformer(cfg, rngs=nnx.Rngs(seed)), mesh)
  pairs = list(pipeline.sft_examples(task, "train", data_dir=root, seed=seed))
  state = sft.warm_start(
    graphdef,
    state,
    pairs,
    tok,
    steps=sft_steps,
    batch_size=32,
    learning_rate=3e-3,
    max_len=128,
    mesh=mesh,
  )
  sampler = Sampler(
    graphdef,
    cfg,
    max_prompt_len=max_prompt_len,
    max_new_tokens=max_new_tokens,
    eos_id=tok.eos_id,
    pad_id=tok.pad_id,
    mesh=mesh,
  )
  return Bench(task, root, tok, cfg, graphdef, state, mesh, sampler)


def bench_from(
  loaded, task: tasks.Task, data_dir: str, mesh, *, max_prompt_len: int, max_new_tokens: int
) -> Bench:
  """The bench of a restored policy (`models.io.load_model`, with its tokenizer)."""
  tok = loaded.tokenizer
  if tok is None:
    raise ValueError("The policy directory has no tokenizer; save it with save_model(tokenizer=).")
  sampler = Sampler(
    loaded.graphdef,
    loaded.cfg,
    max_prompt_len=max_prompt_len,
    max_new_tokens=max_new_tokens,
    eos_id=tok.eos_id,
    pad_id=tok.pad_id,
    mesh=mesh,
  )
  return Bench(task, data_dir, tok, loaded.cfg, loaded.graphdef, loaded.state, mesh, sampler)


def sample_texts(bench: Bench, prompts, samples: int, rng, *, temperature: float = 1.0, chunk=32):
  """`samples` completions of each prompt ([len(prompts)][samples] texts): `chunk` prompts
  per sampler call, each prefilled once for its samples (`prompt_repeats`)."""
  tok, width = bench.tokenizer, bench.sampler.max_prompt_len
  out: list[list[str]] = []
  for a in range(0, len(prompts), chunk):
    part = list(prompts[a : a + chunk])
    part += [part[-1]] * (chunk - len(part))  # One compiled shape.
    tokens_bp, mask_bp = tok.encode_batch(part, width, add_bos=True)
    rollout = bench.sampler.generate(
      bench.state,
      np.repeat(tokens_bp, samples, 0),
      np.repeat(mask_bp, samples, 0),
      jax.random.fold_in(rng, a),
      SamplingParams(temperature=temperature),
      prompt_repeats=samples,
    )
    texts = tok.decode_batch(np.asarray(rollout.tokens_gt), np.asarray(rollout.mask_gt))
    for j in range(min(chunk, len(prompts) - a)):
      out.append(texts[j * samples : (j + 1) * samples])
  return out


def sample_solutions(bench: Bench, indices, samples: int, rng) -> list[label.Solution]:
  """The policy's own solutions (`samples` per problem, temperature 1, `lines` steps) to the
  train problems at `indices`; completions with no steps are dropped."""
  train = bench.task.data_source("train", bench.data_dir)
  exs = [train[int(i)] for i in indices]
  prompts = [bench.task.format_prompt(ex) for ex in exs]
  out = []
  for ex, prompt, texts in zip(exs, prompts, sample_texts(bench, prompts, samples, rng)):
    for text in texts:
      steps = LINES.split(text)
      if steps:
        ref, fields = bench.task.reference(ex), bench.task.verifier_kwargs(ex)
        out.append(label.Solution(prompt, tuple(steps), ref, fields))
  return out


def planted_solutions(task, data_dir, indices, seed: int) -> list[label.Solution]:
  """One chains solution with a planted first error per train problem at `indices` (the
  kinds in turn, at a random step). Only the solutions are planted: their step labels
  still come from Monte-Carlo rollouts."""
  train = task.data_source("train", data_dir)
  rng = np.random.default_rng([seed, 7])
  out = []
  for n, i in enumerate(indices):
    ex = train[int(i)]
    start, ops = int(ex["start"]), chains.parse_ops(ex["ops"])
    kind = chains.ERROR_KINDS[n % len(chains.ERROR_KINDS)]
    steps = chains.corrupt(start, ops, rng, kind=kind, at=int(rng.integers(len(ops))))
    out.append(label.Solution(task.format_prompt(ex), tuple(steps), ex["answer"]))
  return out


def held_out_solutions(task, data_dir, count: int, seed: int = 0):
  """(solutions, ground-truth labels) of the test split: alternately correct and with a
  planted first error (the three kinds in turn, at a random step)."""
  test = task.data_source("test", data_dir)
  rng = np.random.default_rng(seed)
  sols, truth = [], []
  for i in range(min(count, len(test))):
    ex = test[i]
    start, ops = int(ex["start"]), chains.parse_ops(ex["ops"])
    if i % 2 == 0:
      steps = chains.solution_steps(start, ops)
    else:
      kind = chains.ERROR_KINDS[(i // 2) % len(chains.ERROR_KINDS)]
      steps = chains.corrupt(start, ops, rng, kind=kind, at=int(rng.integers(len(ops))))
    sols.append(label.Solution(task.format_prompt(ex), tuple(steps), ex["answer"]))
    truth.append(chains.step_labels(start, ops, steps))
  return sols, truth


def rollout_counter(
  bench: Bench, pool, solutions, cfg: label.LabelConfig, rng, *, temperature: float = 1.0
) -> label.RolloutCounter:
  """The Monte-Carlo rollout counter of `solutions` with the bench's policy and the task's
  verifier."""
  return label.RolloutCounter(
    bench.sampler,
    bench.state,
    bench.tokenizer,
    pool,
    bench.task.verifier,
    solutions,
    cfg,
    sampling=SamplingParams(temperature=temperature),
    rng=rng,
    mesh=bench.mesh,
  )
