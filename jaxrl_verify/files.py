"""The file and process boundaries of the command-line tools, with no JAX import (the
verifier CLI starts without it).

- `decode_line`, `check_input_file`, `check_output_path`: inputs that must be UTF-8
  files, and outputs that must not destroy the input.
- `atomic_output`: an output written under a temporary name and renamed when complete,
  so an interrupted or failed run never leaves a partial file under the output's name.
- `run_cli`: the one place that turns what goes wrong in a CLI (bad input, a full disk,
  device memory, Ctrl-C) into one `error:` sentence and an exit status.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO

# Exit statuses of `run_cli`: 2 as argparse uses for bad arguments; 130 = 128 + SIGINT.
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def decode_line(raw: bytes, path, n: int) -> str:
  """One line of a JSONL file as text; invalid UTF-8 is a one-sentence error naming it."""
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(
      f"{path} line {n} is not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8."
    ) from e


def check_input_file(path: str | os.PathLike, flag: str = "--input") -> None:
  """Refuses an input that is missing or is not a regular file, naming which."""
  if os.path.isdir(path):
    raise ValueError(f"{flag} {path} is a directory; pass a .jsonl file.")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{flag} {path} does not exist; pass an existing .jsonl file.")


def check_output_path(input_path: str | os.PathLike, output_path: str | os.PathLike) -> None:
  """Refuses an output path that names the input file (writing it would destroy the input),
  an existing directory, or a file in a directory that does not exist.

  An existing output file is allowed: `atomic_output` replaces it only once the new one
  is complete, so the old one survives a failed run.
  """
  if os.path.isdir(output_path):
    raise ValueError(f"--output {output_path} is a directory; pass a file path.")
  parent = os.path.dirname(os.path.abspath(output_path))
  if not os.path.isdir(parent):
    raise ValueError(
      f"--output {output_path}: the directory {parent} does not exist; create it first."
    )
  same = os.path.realpath(input_path) == os.path.realpath(output_path)
  if not same and os.path.exists(output_path) and os.path.exists(input_path):
    same = os.path.samefile(input_path, output_path)
  if same:
    raise ValueError(
      f"--output {output_path} is the input file; pass another path so the input is kept."
    )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
  """Opens a temporary file beside `path`, renamed over `path` when the block completes
  (see `atomic_path`)."""
  with atomic_path(path) as tmp, open(tmp, mode, **_text_encoding(mode)) as f:
    yield f


def _text_encoding(mode: str) -> dict[str, str]:
  return {} if "b" in mode else {"encoding": "utf-8"}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
  """A temporary path beside `path` for the block to write, renamed over `path` when the
  block completes.

  On any failure (an exception, Ctrl-C, a full disk) the temporary file is removed and
  `path` is left as it was. An `OSError` from writing becomes one sentence naming `path`.
  """
  path = os.fspath(path)
  tmp = f"{path}.tmp.{os.getpid()}"
  try:
    yield tmp
    os.replace(tmp, path)
  except OSError as e:
    _remove_quietly(tmp)
    raise OSError(
      f"Cannot write {path} ({e.strerror or e}); free disk space or pass another path "
      "(nothing was written under that name)."
    ) from e
  except BaseException:
    _remove_quietly(tmp)
    raise


def _remove_quietly(path: str) -> None:
  with contextlib.suppress(OSError):
    os.remove(path)


def run_cli(prog: str, body: Callable[[], str]) -> int:
  """Runs a CLI's work; returns its exit status.

  `body` returns the summary line printed on success. Bad input (`ValueError`), files and
  disks (`OSError`), device memory and Ctrl-C each end with one `<prog>: error:` sentence
  on stderr as the last thing shown, never a traceback.
  """
  try:
    summary = body()
  except KeyboardInterrupt:
    print(
      f"{prog}: error: interrupted; no output was written (the input is unchanged), "
      "rerun the same command.",
      file=sys.stderr,
    )
    return EXIT_INTERRUPTED
  except (ValueError, OSError) as e:
    print(f"{prog}: error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except RuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise  # A bug, not the user's input: the traceback is the report.
    print(f"{prog}: error: {out_of_memory_message(e)}", file=sys.stderr)
    return EXIT_BAD_INPUT
  print(summary, file=sys.stderr)
  return 0


def out_of_memory_message(e: BaseException) -> str:
  """One sentence for XLA's RESOURCE_EXHAUSTED error (whose text runs to many lines)."""
  first = next((line for line in str(e).splitlines() if "RESOURCE_EXHAUSTED" in line), "")
  detail = first.split("RESOURCE_EXHAUSTED:", 1)[-1].strip()[:120]
  return (
    f"the device ran out of memory ({detail}); lower the batch size or shorten the longest inputs."
  )
