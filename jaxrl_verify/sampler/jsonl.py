"""JSONL files of the CLIs (`sample`, `logprobs`, `score`, the process CLIs): reading and
validating them, refusing an output that would overwrite the input, writing atomically,
batching token rows."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxrl_verify.files import atomic_output, check_input_file, check_output_path, decode_line

__all__ = [
  "check_output_path",  # Re-exported from `files` for the CLIs that read JSONL here.
  "decode_line",
  "length_batches",
  "read_jsonl",
  "round_up",
  "token_ids",
  "write_jsonl_atomically",
]


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
  """One JSON object per non-blank line; a bad line is a one-sentence error naming it."""
  check_input_file(path)
  records = []
  with open(path, "rb") as f:
    for n, raw in enumerate(f, start=1):
      line = decode_line(raw, path, n)
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {n} is not valid JSON ({e.msg}); fix that line.") from e
      if not isinstance(record, dict):
        raise ValueError(f'{path} line {n} must be a JSON object like {{"tokens": [1, 2]}}.')
      record["_line"] = n
      records.append(record)
  if not records:
    raise ValueError(f"{path} holds no input lines; add one JSON object per line.")
  return records


def write_jsonl_atomically(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
  """The records as JSONL (without the `_line` bookkeeping), through a temporary file
  renamed when complete: an interrupted or failed run (a full disk) never leaves a partial
  file under `path`."""
  with atomic_output(path) as f:
    for record in records:
      f.write(json.dumps({k: v for k, v in record.items() if k != "_line"}) + "\n")


def token_ids(record: dict[str, Any], path, vocab_size: int, *, min_len: int = 1) -> list[int]:
  """The `tokens` field of a record, checked: a list of ints in [0, vocab_size)."""
  n = record["_line"]
  tokens = record.get("tokens")
  if not isinstance(tokens, list) or not all(
    isinstance(t, int) and not isinstance(t, bool) for t in tokens
  ):
    raise ValueError(f'{path} line {n} needs "tokens": a list of integer token ids.')
  if len(tokens) < min_len:
    raise ValueError(
      f"{path} line {n} has {len(tokens)} tokens but at least {min_len} are needed; "
      "remove or extend that line."
    )
  bad = [t for t in tokens if not 0 <= t < vocab_size]
  if bad:
    raise ValueError(
      f"{path} line {n} has token ids {bad[:5]} outside the model vocabulary "
      f"[0, {vocab_size}); use ids from the checkpoint's tokenizer."
    )
  return tokens


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def length_batches(lengths: list[int], batch_size: int) -> Iterator[np.ndarray]:
  """Indices of rows grouped by similar length (sorted), at most `batch_size` per group.

  Sorting first keeps padding small; the caller pads each group to a rounded width
  so few distinct shapes (compiled programs) arise.
  """
  order = np.argsort(np.asarray(lengths), kind="stable")
  for start in range(0, len(order), batch_size):
    yield order[start : start + batch_size]
