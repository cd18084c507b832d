"""The chains task's lab bench, shared by the process-supervision measurements: a warm-started
`mini` policy, its sampler, and held-out solutions with known step labels.

The ground truth (`chains.step_labels`) is returned next to the solutions to *measure*
labels and reward models; nothing here trains on it.
"""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np
from flax import nnx

from jaxrl_verify import sft
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import chains, pipeline, tasks
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.process import label
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


def warm_started(
  levels: tuple[int, ...], *, sft_steps: int, num_test: int, seed: int = 0, num_train: int = 4000
) -> Bench:
  """A `mini` policy warm-started on correct chains of `levels` (the train split)."""
  root = tempfile.mkdtemp(prefix="chain_lab_")
  task = tasks.get_task(
    "chains", num_train=num_train, num_test=max(num_test, 16), difficulty=levels, seed=seed
  )
  tok = SentencePieceTokenizer.train(pipeline.texts_for_tokenizer(task, root), 320, root)
  cfg = get_preset("mini", vocab_size=384, num_valid_tokens=tok.vocab_size)
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
    max_prompt_len=160,
    max_new_tokens=48,
    eos_id=tok.eos_id,
    pad_id=tok.pad_id,
    mesh=mesh,
  )
  return Bench(task, root, tok, cfg, graphdef, state, mesh, sampler)


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


def mc_labels(bench: Bench, pool, solutions, num_rollouts: int, rng) -> list[label.StepLabels]:
  """Monte-Carlo labels (full mode) of `solutions` with the bench's policy at temperature 1."""
  cfg = label.LabelConfig(num_rollouts=num_rollouts, prefixes_per_call=max(1, 64 // num_rollouts))
  counter = label.RolloutCounter(
    bench.sampler,
    bench.state,
    bench.tokenizer,
    pool,
    "math",
    solutions,
    cfg,
    sampling=SamplingParams(temperature=1.0),
    rng=rng,
    mesh=bench.mesh,
  )
  return label.label_solutions(solutions, counter, cfg)
