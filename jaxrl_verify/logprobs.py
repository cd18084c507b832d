r"""Teacher-forced log-probabilities of token sequences under a saved model.

  python -m jaxrl_verify.logprobs --checkpoint DIR --input IN.jsonl --output OUT.jsonl

Input lines: `{"tokens": [int, ...]}` (other fields are copied through). Output lines add
`"logprobs"`: `log p(tokens[i] | tokens[:i])` for i = 1 .. n-1 (n-1 float32 numbers;
an empty list for a one-token line). Lines of different lengths are batched together:
sorted by length, right-padded to a multiple of `--pad-multiple`, `--batch-size` rows
per call, so only a few programs are compiled.
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np
from flax import nnx

from jaxrl_verify import files
from jaxrl_verify.models import scoring
from jaxrl_verify.sampler import jsonl


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.logprobs",
    description="Teacher-forced per-token log-probabilities of JSONL token sequences "
    '(input lines {"tokens": [...]}, output adds "logprobs" for tokens 1..n-1).',
  )
  parser.add_argument("--checkpoint", required=True, help="model directory from save_model")
  parser.add_argument("--input", required=True, help='input .jsonl, one {"tokens": [...]} per line')
  parser.add_argument("--output", required=True, help="output .jsonl (input fields + logprobs)")
  parser.add_argument("--batch-size", type=int, default=32, help="sequences per device call")
  parser.add_argument(
    "--pad-multiple", type=int, default=16, help="pad lengths up to a multiple of this"
  )
  args = parser.parse_args(argv)
  if args.batch_size < 1 or args.pad_multiple < 1:
    parser.error("--batch-size and --pad-multiple must be positive integers.")
  return args


def score_records(loaded, records, path, *, batch_size: int, pad_multiple: int) -> None:
  """Adds `logprobs` to every record in place."""
  vocab = loaded.cfg.vocab_size
  token_lists = [jsonl.token_ids(r, path, vocab) for r in records]

  @jax.jit
  def forward(state, tokens_bt, valid_bt):
    model = nnx.merge(loaded.graphdef, state)
    return scoring.teacher_forced_logprobs(model, tokens_bt, valid_bt)

  for rows in jsonl.length_batches([len(t) for t in token_lists], batch_size):
    width = jsonl.round_up(max(len(token_lists[i]) for i in rows), pad_multiple)
    # Full batches only (filler rows score nothing): one program per width.
    tokens_bt = np.zeros((batch_size, width), np.int32)
    valid_bt = np.zeros((batch_size, width), bool)
    for r, i in enumerate(rows):
      n = len(token_lists[i])
      tokens_bt[r, :n], valid_bt[r, :n] = token_lists[i], True
    logp_bt = np.asarray(forward(loaded.state, tokens_bt, valid_bt))
    for r, i in enumerate(rows):
      records[i]["logprobs"] = logp_bt[r, : len(token_lists[i]) - 1].tolist()


def main(argv=None) -> int:
  args = parse_args(argv)

  def body() -> str:
    from jaxrl_verify.models.io import load_model

    jsonl.check_output_path(args.input, args.output)
    records = jsonl.read_jsonl(args.input)
    loaded = load_model(args.checkpoint, with_tokenizer=False)
    score_records(
      loaded, records, args.input, batch_size=args.batch_size, pad_multiple=args.pad_multiple
    )
    jsonl.write_jsonl_atomically(args.output, records)
    return f"wrote {len(records)} lines to {args.output}"

  return files.run_cli("logprobs", body)


if __name__ == "__main__":
  sys.exit(main())
