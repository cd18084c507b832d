r"""Sample completions from a saved model.

  python -m jaxrl_verify.sample --checkpoint DIR --input IN.jsonl --output OUT.jsonl \
      [--temperature 1.0] [--top-k 0] [--top-p 1.0] [--max-new-tokens 64] [--seed 0] \
      [--batch-size 16]

Input lines: `{"tokens": [int, ...]}`, or `{"text": str}` when the checkpoint carries a
tokenizer. Output lines: the input plus `"completion_tokens"` (including the final EOS or
stop token, if any), `"logprobs"` (one per completion token, under the raw policy),
`"finish_reason"` (`eos` or `length`) and, with a tokenizer, `"completion"` (text).
Prompts of different lengths are batched together (sorted by length, left-padded to a
multiple of `--pad-multiple`). Row i of batch j uses the key `fold_in(key(seed), j)`.
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

from jaxrl_verify import files
from jaxrl_verify.sampler import Sampler, SamplingParams, jsonl


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="python -m jaxrl_verify.sample",
    description='Sample completions for JSONL prompts ({"tokens": [...]} or {"text": ...}) '
    "from a saved model; temperature 0 is greedy.",
  )
  parser.add_argument("--checkpoint", required=True, help="model directory from save_model")
  parser.add_argument("--input", required=True, help="input .jsonl of prompts")
  parser.add_argument("--output", required=True, help="output .jsonl (input fields + completion)")
  parser.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
  parser.add_argument("--top-k", type=int, default=0, help="keep the k best tokens (0: all)")
  parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (1: all)")
  parser.add_argument("--max-new-tokens", type=int, default=64, help="completion length cap")
  parser.add_argument("--seed", type=int, default=0, help="sampling seed")
  parser.add_argument("--batch-size", type=int, default=16, help="prompts per device call")
  parser.add_argument(
    "--pad-multiple", type=int, default=16, help="pad prompt widths up to a multiple of this"
  )
  parser.add_argument(
    "--eos-id",
    type=int,
    default=None,
    help="end-of-sequence id (default: the tokenizer's; none without a tokenizer)",
  )
  parser.add_argument(
    "--stop-ids", default="", help="comma-separated extra ids that end a completion"
  )
  parser.add_argument("--add-bos", action="store_true", help="prepend BOS when encoding text")
  args = parser.parse_args(argv)
  if args.batch_size < 1 or args.pad_multiple < 1 or args.max_new_tokens < 1:
    parser.error("--batch-size, --pad-multiple and --max-new-tokens must be positive integers.")
  try:
    args.stop_ids = [int(s) for s in args.stop_ids.split(",") if s.strip()]
    args.params = SamplingParams(
      temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed
    )
  except ValueError as e:
    parser.error(str(e) if "must" in str(e) else "--stop-ids must be comma-separated integers.")
  return args


def prompt_ids(records, path, loaded, add_bos: bool) -> list[list[int]]:
  """Token ids of every prompt (text is encoded with the checkpoint's tokenizer)."""
  out = []
  for record in records:
    if "tokens" in record:
      out.append(jsonl.token_ids(record, path, loaded.cfg.vocab_size))
    elif isinstance(record.get("text"), str):
      if loaded.tokenizer is None:
        raise ValueError(
          f'{path} line {record["_line"]} gives "text" but the checkpoint has no '
          'tokenizer.model; give "tokens" instead or save the model with its tokenizer.'
        )
      ids = loaded.tokenizer.encode(record["text"], add_bos=add_bos)
      if not ids:
        raise ValueError(f"{path} line {record['_line']} encodes to no tokens; give a prompt.")
      out.append(
        jsonl.token_ids({"tokens": ids, "_line": record["_line"]}, path, loaded.cfg.vocab_size)
      )
    else:
      raise ValueError(
        f'{path} line {record["_line"]} needs "tokens" (a list of ids) or "text" (a string).'
      )
  return out


def sample_records(loaded, records, prompts, args) -> None:
  """Adds completion fields to every record in place."""
  tok = loaded.tokenizer
  eos_id = args.eos_id if args.eos_id is not None else (tok.eos_id if tok is not None else None)
  if eos_id is not None and eos_id < 0:
    eos_id = None
  pad_id = tok.pad_id if tok is not None and tok.pad_id >= 0 else 0
  widest = jsonl.round_up(max(len(p) for p in prompts), args.pad_multiple)
  sampler = Sampler(
    loaded.graphdef,
    loaded.cfg,
    max_prompt_len=widest,
    max_new_tokens=args.max_new_tokens,
    eos_id=eos_id,
    stop_ids=args.stop_ids,
    pad_id=pad_id,
  )
  key = jax.random.key(args.seed)
  for j, rows in enumerate(jsonl.length_batches([len(p) for p in prompts], args.batch_size)):
    width = jsonl.round_up(max(len(prompts[i]) for i in rows), args.pad_multiple)
    # Full batches (filler rows hold one token) so each width compiles once.
    tokens_bp = np.full((args.batch_size, width), pad_id, np.int32)
    mask_bp = np.zeros((args.batch_size, width), bool)
    tokens_bp[:, -1], mask_bp[:, -1] = pad_id, True
    for r, i in enumerate(rows):
      n = len(prompts[i])
      tokens_bp[r, width - n :], mask_bp[r, width - n :] = prompts[i], True
    out = sampler.generate(
      loaded.state, tokens_bp, mask_bp, jax.random.fold_in(key, j), args.params
    )
    tokens_bt, logp_bt = np.asarray(out.tokens_gt), np.asarray(out.logp_gt)
    length_b, reasons = np.asarray(out.length_g), out.finish_reasons()
    for r, i in enumerate(rows):
      n = int(length_b[r])
      record = records[i]
      record["completion_tokens"] = tokens_bt[r, :n].tolist()
      record["logprobs"] = logp_bt[r, :n].tolist()
      record["finish_reason"] = reasons[r]
      if tok is not None:
        record["completion"] = tok.decode(tokens_bt[r, :n])


def main(argv=None) -> int:
  args = parse_args(argv)

  def body() -> str:
    from jaxrl_verify.models.io import load_model

    jsonl.check_output_path(args.input, args.output)
    records = jsonl.read_jsonl(args.input)
    loaded = load_model(args.checkpoint)
    prompts = prompt_ids(records, args.input, loaded, args.add_bos)
    sample_records(loaded, records, prompts, args)
    jsonl.write_jsonl_atomically(args.output, records)
    return f"wrote {len(records)} lines to {args.output}"

  return files.run_cli("sample", body)


if __name__ == "__main__":
  sys.exit(main())
