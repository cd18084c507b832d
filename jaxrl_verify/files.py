"""The file boundaries of the CLIs, with no JAX import (the verifier CLI starts without
it): text lines that must be UTF-8, and output paths that must not overwrite the input."""

from __future__ import annotations

import os


def decode_line(raw: bytes, path, n: int) -> str:
  """One line of a JSONL file as text; invalid UTF-8 is a one-sentence error naming it."""
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(
      f"{path} line {n} is not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8."
    ) from e


def check_output_path(input_path: str | os.PathLike, output_path: str | os.PathLike) -> None:
  """Refuses an output path that names the input file (writing it would destroy the input)
  or an existing directory."""
  if os.path.isdir(output_path):
    raise ValueError(f"--output {output_path} is a directory; pass a file path.")
  same = os.path.realpath(input_path) == os.path.realpath(output_path)
  if not same and os.path.exists(output_path) and os.path.exists(input_path):
    same = os.path.samefile(input_path, output_path)
  if same:
    raise ValueError(
      f"--output {output_path} is the input file; pass another path so the input is kept."
    )
