r"""Monte-Carlo step labels for JSONL solutions, from a saved policy and the verifier pool.

  python -m jaxrl_verify.process.label_cli --checkpoint MODEL_DIR --input IN.jsonl \
      --output OUT.jsonl [--num-rollouts 8] [--mode full|binary_search] \
      [--step-format lines] [--delimiter STR] [--verifier math] [--temperature 1.0] \
      [--max-new-tokens 64] [--max-prompt-len 256] [--prefixes-per-call 8] [--workers 2] \
      [--seed 0]

Input lines: `{"prompt": str, "steps": [str, ...], "reference": str}` plus any verifier
fields (e.g. `numbers` for countdown). Output lines: the input plus `labels` (0/1 per
step), `soft_labels` (fraction of rollouts correct; null where binary search did not
probe) and `rollouts` (per step). MODEL_DIR is a `models.io.save_model` directory with a
tokenizer. The output is written to a temporary file and renamed when complete, so an
interrupted run never leaves a partial file under the output name.
"""

from __future__ import annotations

import argparse
import sys

import jax

from jaxrl_verify import files
from jaxrl_verify.process import label as label_lib
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.sampler import Sampler, SamplingParams, jsonl


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.process.label_cli",
    description="Monte-Carlo step labels (Math-Shepherd hard/soft, OmegaPRM binary search).",
  )
  parser.add_argument("--checkpoint", required=True, help="policy directory from save_model")
  parser.add_argument("--input", required=True, help='.jsonl of {"prompt", "steps", "reference"}')
  parser.add_argument("--output", required=True, help="output .jsonl (input + labels)")
  parser.add_argument("--num-rollouts", type=int, default=8, help="N rollouts per prefix")
  parser.add_argument("--mode", default="full", choices=label_lib.MODES)
  parser.add_argument("--step-format", default="lines", help="how steps are joined for rollouts")
  parser.add_argument("--delimiter", default="", help="the delimiter of --step-format=delimiter")
  parser.add_argument("--verifier", default="math", help="registered verifier name")
  parser.add_argument("--temperature", type=float, default=1.0)
  parser.add_argument("--max-new-tokens", type=int, default=64, help="rollout length cap")
  parser.add_argument("--max-prompt-len", type=int, default=256, help="prompt + prefix cap")
  parser.add_argument("--prefixes-per-call", type=int, default=8)
  parser.add_argument("--workers", type=int, default=2, help="verifier processes")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  for name in ("num_rollouts", "max_new_tokens", "max_prompt_len", "prefixes_per_call", "workers"):
    if getattr(args, name) < 1:
      parser.error(f"--{name.replace('_', '-')} must be a positive integer.")
  try:
    jsonl.check_output_path(args.input, args.output)
  except ValueError as e:
    parser.error(str(e))
  try:
    steps_lib.step_format(args.step_format, args.delimiter or None)
  except ValueError as e:
    parser.error(str(e))
  return args


def main(argv=None) -> int:
  args = parse_args(argv)

  def body() -> str:
    from jaxrl_verify.models.io import load_model
    from jaxrl_verify.verifiers import base as verifiers
    from jaxrl_verify.verifiers.pool import VerifierPool

    verifiers.get(args.verifier)  # An unknown name now, not as all-zero labels later.
    records, solutions = label_lib.read_solutions(args.input)
    loaded = load_model(args.checkpoint)
    if loaded.tokenizer is None:
      raise ValueError(
        f"{args.checkpoint} has no tokenizer; save the policy with its tokenizer "
        "(models.io.save_model(..., tokenizer=...))."
      )
    cfg = label_lib.LabelConfig(
      num_rollouts=args.num_rollouts,
      mode=args.mode,
      step_format=args.step_format,
      delimiter=args.delimiter,
      prefixes_per_call=args.prefixes_per_call,
    )
    tok = loaded.tokenizer
    sampler = Sampler(
      loaded.graphdef,
      loaded.cfg,
      max_prompt_len=args.max_prompt_len,
      max_new_tokens=args.max_new_tokens,
      eos_id=tok.eos_id,
      pad_id=tok.pad_id,
    )
    with VerifierPool(num_workers=args.workers) as pool:
      counter = label_lib.RolloutCounter(
        sampler,
        loaded.state,
        tok,
        pool,
        args.verifier,
        solutions,
        cfg,
        sampling=SamplingParams(temperature=args.temperature),
        rng=jax.random.PRNGKey(args.seed),
      )
      labelled = label_lib.label_solutions(solutions, counter, cfg)
    label_lib.add_labels(records, labelled)
    jsonl.write_jsonl_atomically(args.output, records)
    spent = sum(sum(r["rollouts"]) for r in records)
    return (
      f"labelled {len(records)} solutions ({sum(len(r['labels']) for r in records)} steps, "
      f"{spent} rollouts, {counter.calls} sampler calls) into {args.output}"
    )

  return files.run_cli("label_cli", body)


if __name__ == "__main__":
  sys.exit(main())
