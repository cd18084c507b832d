r"""Monte-Carlo step labelling throughput: the labeller against the raw sampler and a naive one.

  python benchmarks/mc_label.py [--solutions 16] [--rollouts 8] [--prefixes-per-call 8] \
      [--preset mini] [--max-new-tokens 32] [--workers 2]

Set-up: chains of 5 computation steps (level 3; 5 prefixes to roll out per solution),
half of them with a planted error; a fresh `--preset` policy (weights do not change the
cost: EOS is ignored, so every rollout generates `--max-new-tokens` tokens, as in
`benchmarks/sampler.py`); the math verifier in `--workers` pool processes. One JSON
object per system on stdout, all measured in this run after a warm-up call of each:

* `labeller`: `process.label.label_solutions` in `full` mode: every prefix's N rollouts in
  calls of `--prefixes-per-call` prefixes, each prefix prefilled once (`prompt_repeats`),
  the pool verifying one call's completions while the next samples.
* `sampler`: the same calls of the raw sampler on the same rows, nothing verified: the
  ceiling for the labeller.
* `naive`: one `generate` per prefix (N rows, the prefix encoded N times), its N
  completions verified before the next prefix is sampled.

Fields: `prefixes_per_s` (labelled prefixes / s), `tokens_per_s` (rollout tokens / s),
`wall_s`; and the ratios `labeller_vs_sampler` (tokens/s) and `labeller_vs_naive`
(prefixes/s).

Measured on the 2-core development CPU (2026-12-02), 64 solutions (320 prefixes) x 8
rollouts x 32 tokens, 8 prefixes per call, 2 pool workers:
  `mini`:  labeller 114 prefixes/s (29.1k tokens/s), sampler 34.0k tokens/s, naive 43.9
           prefixes/s: 0.86x the raw sampler, 2.59x the naive labeller.
  `bench`: labeller 13.1 prefixes/s (3.36k tokens/s), sampler 3.67k tokens/s, naive 4.8
           prefixes/s: 0.91x the raw sampler, 2.72x the naive labeller.
The issue's targets are 0.7x the sampler (met) and 3x the naive labeller (missed: the
naive one already samples a prefix's 8 rollouts in one call; the labeller's gain is the
8x larger calls and the shared prefill, and on 2 cores the pool's processes compete
with XLA's threads for the same cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import jax
import numpy as np
from flax import nnx

from jaxrl_verify import sharding as shd
from jaxrl_verify.data import chains, pipeline, tasks
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.process import label, steps
from jaxrl_verify.sampler import Sampler, SamplingParams
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer
from jaxrl_verify.verifiers.pool import VerifierPool


def solutions(task, data_dir, count: int) -> list[label.Solution]:
  test = task.data_source("train", data_dir)
  rng = np.random.default_rng(0)
  out = []
  for i in range(count):
    ex = test[i]
    start, ops = int(ex["start"]), chains.parse_ops(ex["ops"])
    sol = (
      chains.solution_steps(start, ops)
      if i % 2 == 0
      else chains.corrupt(start, ops, rng, kind="wrong_result", at=i % len(ops))
    )
    out.append(label.Solution(task.format_prompt(ex), tuple(sol), ex["answer"]))
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--solutions", type=int, default=16)
  parser.add_argument("--rollouts", type=int, default=8)
  parser.add_argument("--prefixes-per-call", type=int, default=8)
  parser.add_argument("--preset", default="mini")
  parser.add_argument("--max-new-tokens", type=int, default=32)
  parser.add_argument("--workers", type=int, default=2)
  args = parser.parse_args()

  root = tempfile.mkdtemp(prefix="mc_label_bench_")
  task = tasks.get_task("chains", num_train=max(args.solutions, 16), num_test=16, difficulty=(3,))
  tok = SentencePieceTokenizer.train(pipeline.texts_for_tokenizer(task, root), 320, root)
  cfg = get_preset(args.preset, vocab_size=384, num_valid_tokens=tok.vocab_size)
  mesh = shd.make_mesh((-1, 1, 1))
  graphdef, state, _ = shd.create_sharded(lambda: Transformer(cfg, rngs=nnx.Rngs(0)), mesh)
  sampler = Sampler(
    graphdef,
    cfg,
    max_prompt_len=160,
    max_new_tokens=args.max_new_tokens,
    eos_id=None,
    pad_id=tok.pad_id,
    mesh=mesh,
  )
  sols = solutions(task, root, args.solutions)
  sampling = SamplingParams(temperature=1.0)
  cfg_l = label.LabelConfig(num_rollouts=args.rollouts, prefixes_per_call=args.prefixes_per_call)
  n_prefixes = sum(len(s.steps) - 1 for s in sols)
  results = []
  with VerifierPool(num_workers=args.workers) as pool:

    def counter(solutions_):
      return label.RolloutCounter(
        sampler,
        state,
        tok,
        pool,
        "math",
        solutions_,
        cfg_l,
        sampling=sampling,
        rng=jax.random.PRNGKey(0),
        mesh=mesh,
      )

    label.label_solutions(sols[:2], counter(sols[:2]), cfg_l)  # Warm-up: compile.
    c = counter(sols)
    t0 = time.perf_counter()
    label.label_solutions(sols, c, cfg_l)
    wall = time.perf_counter() - t0
    results.append(("labeller", n_prefixes / wall, c.tokens / wall, wall))

    # The raw sampler: the same calls on the same rows, nothing decoded or verified.
    requests = [(i, k) for i, s in enumerate(sols) for k in range(len(s.steps) - 1)]
    size, n = args.prefixes_per_call, args.rollouts
    chunks = [requests[a : a + size] for a in range(0, len(requests), size)]
    rows = [c.rows([*ch, *[ch[-1]] * (size - len(ch))]) for ch in chunks]
    tokens = 0
    t0 = time.perf_counter()
    for j, (tokens_bp, mask_bp) in enumerate(rows):
      prompt_gp, mask_gp = np.repeat(tokens_bp, n, 0), np.repeat(mask_bp, n, 0)
      out = sampler.generate(
        state, prompt_gp, mask_gp, jax.random.PRNGKey(j), sampling, prompt_repeats=n
      )
      tokens += int(np.asarray(out.mask_gt)[: len(chunks[j]) * n].sum())
    wall = time.perf_counter() - t0
    results.append(("sampler", n_prefixes / wall, tokens / wall, wall))

    # The naive labeller: one generate per prefix (prompt repeated, not shared), verified
    # before the next.
    fmt = steps.step_format("lines")
    naive_rows = [c.rows([r]) for r in requests]
    warm = np.repeat(naive_rows[0][0], n, 0), np.repeat(naive_rows[0][1], n, 0)
    sampler.generate(state, *warm, jax.random.PRNGKey(0), sampling)  # Compile its shape.
    tokens = 0
    t0 = time.perf_counter()
    for (i, k), (tokens_bp, mask_bp) in zip(requests, naive_rows):
      out = sampler.generate(
        state,
        np.repeat(tokens_bp, n, 0),
        np.repeat(mask_bp, n, 0),
        jax.random.PRNGKey(i),
        sampling,
      )
      mask_gt = np.asarray(out.mask_gt)
      tokens += int(mask_gt.sum())
      prefix = steps.prefix_text(sols[i].steps, k, fmt)
      texts = tok.decode_batch(np.asarray(out.tokens_gt), mask_gt)
      pool.map(
        [
          {"verifier": "math", "completion": prefix + t, "reference": sols[i].reference}
          for t in texts
        ]
      )
    wall = time.perf_counter() - t0
    results.append(("naive", n_prefixes / wall, tokens / wall, wall))

  by = {name: (p, t) for name, p, t, _ in results}
  for name, prefixes_per_s, tokens_per_s, wall in results:
    print(
      json.dumps(
        {
          "system": name,
          "prefixes_per_s": prefixes_per_s,
          "tokens_per_s": tokens_per_s,
          "wall_s": wall,
          "prefixes": n_prefixes,
          "rollouts": args.rollouts,
          "prefixes_per_call": args.prefixes_per_call,
          "preset": args.preset,
          "max_new_tokens": args.max_new_tokens,
          "workers": args.workers,
        }
      )
    )
  print(
    json.dumps(
      {
        "labeller_vs_sampler": by["labeller"][1] / by["sampler"][1],
        "labeller_vs_naive": by["labeller"][0] / by["naive"][0],
      }
    )
  )


if __name__ == "__main__":
  main()
