r"""A PRM learnt from Monte-Carlo labels of the policy's own samples, scored on first errors.

  python -m jaxrl_verify.process.prm_accuracy [--levels 1,2] [--problems 256] \
      [--samples 2] [--rollouts 8] [--prm-steps 300] [--heldout 96] [--output FILE.json]

The chain of process supervision on the chains task, end to end on a CPU: a `mini` policy
is warm-started on correct chains; it samples `--samples` solutions to each of `--problems`
train problems; every step of those is labelled by `--rollouts` Monte-Carlo rollouts
through the verifier (hard labels); a PRM with the policy's backbone is trained on them;
it then claims the first wrong step of held-out solutions (half correct, half with a
planted first error), scored with ProcessBench's F1 against the chains checker (used only
here, to measure). Prints and writes one JSON object with `prm_first_error`
(`acc_error`, `acc_correct`, `f1`), `mc_label_positive_frac`, counts and `wall_s`.

Measured on the 2-core development CPU (2026-12-02), defaults (levels 1-2; 512 policy
solutions, 60% of them right; 2297 steps labelled with 14,280 rollouts, 85% of the labels
positive; 300 PRM steps; 96 held-out solutions), 5 min 24 s: **first-error F1 0.04**
(acc_error 0.02, acc_correct 0.92), far from the issue's 0.8. The PRM learnt from the
policy's own, mostly right steps calls almost every step good: its labels are 85%
positive, and the planted errors of the held-out set (wrong operation, wrong number,
wrong result) are rare in the policy's samples. With `--planted 256` (256 train
solutions with planted errors added to the labelled pool; their labels still come from
rollouts; 3451 steps, 21,464 rollouts, 66% positive), 5 min 29 s: **F1 0.28** (acc_error
0.25, acc_correct 0.31): the PRM now flags errors but often at the wrong step, and
flags correct solutions too. Still to try (not tuned here): class balance, soft labels,
more PRM steps, a larger model.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
import optax
from flax import nnx

from jaxrl_verify.data import chains
from jaxrl_verify.models import transformer
from jaxrl_verify.models.transformer import ValueModel
from jaxrl_verify.process import chain_lab, label, measure, rm
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.sampler import SamplingParams
from jaxrl_verify.verifiers.pool import VerifierPool

FMT = steps_lib.step_format("lines")


def sample_solutions(bench, problems: int, samples: int, rng) -> list[label.Solution]:
  """`samples` of the policy's own solutions to each of the first `problems` train problems."""
  train = bench.task.data_source("train", bench.data_dir)
  tok, width = bench.tokenizer, bench.sampler.max_prompt_len
  out = []
  chunk = 32
  for a in range(0, problems, chunk):
    exs = [train[i] for i in range(a, min(a + chunk, problems))]
    exs += [exs[-1]] * (chunk - len(exs))
    prompts = [bench.task.format_prompt(ex) for ex in exs]
    tokens_bp, mask_bp = tok.encode_batch(prompts, width, add_bos=True)
    out_r = bench.sampler.generate(
      bench.state,
      np.repeat(tokens_bp, samples, 0),
      np.repeat(mask_bp, samples, 0),
      jax.random.fold_in(rng, a),
      SamplingParams(temperature=1.0),
      prompt_repeats=samples,
    )
    texts = tok.decode_batch(np.asarray(out_r.tokens_gt), np.asarray(out_r.mask_gt))
    for j, text in enumerate(texts[: min(chunk, problems - a) * samples]):
      steps = FMT.split(text)
      if steps:
        ex = exs[j // samples]
        out.append(label.Solution(prompts[j // samples], tuple(steps), ex["answer"]))
  return out


def planted_solutions(bench, problems: int, seed: int) -> list[label.Solution]:
  """One solution with a planted first error per train problem (kinds in turn, random step).

  Only the solutions are planted; their step labels still come from Monte-Carlo rollouts.
  """
  train = bench.task.data_source("train", bench.data_dir)
  rng = np.random.default_rng([seed, 7])
  out = []
  for i in range(problems):
    ex = train[i]
    start, ops = int(ex["start"]), chains.parse_ops(ex["ops"])
    kind = chains.ERROR_KINDS[i % len(chains.ERROR_KINDS)]
    steps = chains.corrupt(start, ops, rng, kind=kind, at=int(rng.integers(len(ops))))
    out.append(label.Solution(bench.task.format_prompt(ex), tuple(steps), ex["answer"]))
  return out


def train_prm(
  bench, sols, labels, *, steps: int, seed: int, max_len: int = 192, max_steps: int = 12
):
  """A PRM on the policy's backbone, trained on (solutions, labels) with BCE; its params."""
  graphdef, params = nnx.split(ValueModel(bench.cfg, rngs=nnx.Rngs(seed + 1)))
  params = transformer.with_policy_backbone(params, bench.state)
  keep = [i for i, s in enumerate(sols) if len(s.steps) <= max_steps]
  batch_all = rm.pack(
    bench.tokenizer,
    [sols[i].prompt for i in keep],
    [sols[i].steps for i in keep],
    [labels[i] for i in keep],
    FMT,
    max_len=max_len,
    max_steps=max_steps,
  )
  tx = optax.adamw(optax.cosine_decay_schedule(1e-3, steps), weight_decay=0.0)
  opt_state = tx.init(params)
  step_fn = jax.jit(rm.make_train_step(graphdef, tx))
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    rows = rng.choice(len(keep), size=min(32, len(keep)), replace=False)
    mb = rm.RMBatch(*(np.asarray(x)[rows] for x in vars(batch_all).values()))
    params, opt_state, _ = step_fn(params, opt_state, mb)
  return graphdef, params


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--levels", default="1,2")
  parser.add_argument("--problems", type=int, default=256)
  parser.add_argument("--samples", type=int, default=2)
  parser.add_argument("--rollouts", type=int, default=8)
  parser.add_argument("--prm-steps", type=int, default=300)
  parser.add_argument("--heldout", type=int, default=96)
  parser.add_argument(
    "--planted", type=int, default=0, help="also label this many planted-error train solutions"
  )
  parser.add_argument("--sft-steps", type=int, default=1500)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", default="")
  args = parser.parse_args(argv)
  t0 = time.perf_counter()
  levels = tuple(int(x) for x in args.levels.split(","))
  bench = chain_lab.warm_started(
    levels, sft_steps=args.sft_steps, num_test=args.heldout, seed=args.seed
  )
  rng = jax.random.PRNGKey(args.seed)
  sols = sample_solutions(bench, args.problems, args.samples, rng)
  sols += planted_solutions(bench, args.planted, args.seed)
  with VerifierPool(num_workers=args.workers) as pool:
    labelled = chain_lab.mc_labels(bench, pool, sols, args.rollouts, jax.random.fold_in(rng, 1))
  labels = [[float(x) for x in lab.labels] for lab in labelled]
  graphdef, params = train_prm(bench, sols, labels, steps=args.prm_steps, seed=args.seed)
  held, truth = chain_lab.held_out_solutions(bench.task, bench.data_dir, args.heldout, args.seed)
  batch = rm.pack(
    bench.tokenizer,
    [s.prompt for s in held],
    [s.steps for s in held],
    None,
    FMT,
    max_len=192,
    max_steps=12,
  )
  probs = np.asarray(jax.jit(rm.make_score_fn(graphdef))(params, batch))
  pred = [measure.first_error_of(probs[i, : len(s.steps)].tolist()) for i, s in enumerate(held)]
  true_first = [next((k for k, ok in enumerate(t) if not ok), -1) for t in truth]
  out = {
    "prm_first_error": measure.processbench_f1(pred, true_first),
    "mc_label_positive_frac": float(np.mean([x for lab in labels for x in lab])),
    "policy_solutions": len(sols),
    "policy_solutions_correct_frac": float(np.mean([lab[-1] for lab in labels])),
    "labelled_steps": sum(len(lab) for lab in labels),
    "rollouts": sum(sum(lab.rollouts) for lab in labelled),
    "heldout_solutions": len(held),
    "planted_train_solutions": args.planted,
    "levels": list(levels),
    "prm_steps": args.prm_steps,
    "wall_s": time.perf_counter() - t0,
  }
  print(json.dumps(out))
  if args.output:
    with open(args.output, "w") as f:
      json.dump(out, f, indent=2)
  return out


if __name__ == "__main__":
  main()
