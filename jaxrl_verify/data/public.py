"""GSM8K and MATH as tfds builders over files the user provides (`manual_dir`).

Nothing is downloaded. Put the files in the task's manual directory (by default
`DATA_DIR/manual/<builder name>/`, or pass `manual_dir`):

- GSM8K: `train.jsonl` and `test.jsonl` from github.com/openai/grade-school-math
  (`grade_school_math/data/`), one `{"question", "answer"}` object per line, the
  final answer after `####`.
- MATH (Hendrycks et al.): the `train/` and `test/` directories of per-problem JSON
  files (`train/algebra/1.json`, ...), or `train.jsonl` and `test.jsonl`; each
  problem has `problem` and `solution`, the answer being the last `\\boxed{...}`.

Each example has `id`, `question`, `answer` (reference for the `math` verifier) and
`solution` (a worked demonstration ending with the boxed answer). The files are read
once into `DATA_DIR/<builder name>/`; delete that folder to re-read changed files.
"""

from __future__ import annotations

import abc
import gzip
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import arithmetic

_CALC = re.compile(r"<<[^>]*>>")  # GSM8K calculator annotations.


def last_boxed(text: str) -> str | None:
  """Contents of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced; None if absent."""
  start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
  if start < 0:
    return None
  i = text.index("{", start) + 1
  depth, j = 1, i
  while j < len(text) and depth:
    depth += {"{": 1, "}": -1}.get(text[j], 0)
    j += 1
  return text[i : j - 1].strip() if depth == 0 else None


class _ManualBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  VERSION = tfds.core.Version("1.0.0")
  url_infos = None  # Nothing is downloaded (and tfds' lookup needs importlib_resources).
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  def _info(self) -> tfds.core.DatasetInfo:
    text = tfds.features.Text()
    return tfds.core.DatasetInfo(
      builder=self,
      description=(self.__doc__ or "").strip(),
      features=tfds.features.FeaturesDict(
        {"id": text, "question": text, "answer": text, "solution": text, **self._extra()}
      ),
    )

  def _extra(self) -> dict[str, Any]:
    return {}

  def _manual_dir(self, dl_manager) -> str:
    try:
      return os.fspath(dl_manager.manual_dir)
    except AssertionError:
      raise FileNotFoundError(self.missing_files_message(None)) from None

  @classmethod
  @abc.abstractmethod
  def missing_files_message(cls, manual_dir: str | None) -> str:
    """The exact instruction for providing the files; every dataset subclass defines it."""

  @classmethod
  @abc.abstractmethod
  def standin_rows(cls, n: int) -> list[dict[str, Any]]:
    """n example rows in the dataset's own file format, made from arithmetic problems."""

  @classmethod
  def write_standin(cls, manual_dir: str, num_train: int = 48, num_test: int = 16) -> None:
    """Writes a tiny `train.jsonl`/`test.jsonl` stand-in into `manual_dir` (atomically).

    For `:runlocal` configs (task option `standin=True`), which must run without the real
    files; the stand-in is read through the real builder, so its parsing runs too.
    """
    os.makedirs(manual_dir, exist_ok=True)
    rows = cls.standin_rows(num_train + num_test)
    for split, part in (("test", rows[:num_test]), ("train", rows[num_test:])):
      tmp = os.path.join(manual_dir, f".{split}.{os.getpid()}.tmp")
      with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in part)
      os.replace(tmp, os.path.join(manual_dir, f"{split}.jsonl"))


class Gsm8k(_ManualBuilder):
  """GSM8K grade-school math word problems, from user-provided jsonl files."""

  @classmethod
  def missing_files_message(cls, manual_dir: str | None) -> str:
    where = manual_dir or "the manual directory (pass manual_dir)"
    return (
      f"GSM8K needs train.jsonl and test.jsonl (from github.com/openai/grade-school-math, "
      f"grade_school_math/data/) in {where}; put both files there and rerun."
    )

  @classmethod
  def has_files(cls, manual_dir: str) -> bool:
    return all(os.path.isfile(os.path.join(manual_dir, f"{s}.jsonl")) for s in ("train", "test"))

  @classmethod
  def standin_rows(cls, n: int) -> list[dict[str, Any]]:
    """GSM8K-format rows: worked steps with `<<...>>` calculator notes, `#### answer`."""
    rng, out = np.random.default_rng(0), []
    for i in range(n):
      p = arithmetic.sample_problem(rng, level=1 + i % 2)
      work = p["solution"].rsplit("\\boxed", 1)[0].strip()
      # GSM8K writes each computation with a calculator annotation, e.g. `<<7+5=12>>12`.
      lhs, _, rhs = work.split(".")[0].partition(" = ")
      work = work.replace(f"{lhs} = {rhs}", f"{lhs} = <<{lhs.replace(' ', '')}={rhs}>>{rhs}", 1)
      out.append({"question": p["question"], "answer": f"{work}\n#### {p['answer']}"})
    return out

  def _split_generators(self, dl_manager):
    root = self._manual_dir(dl_manager)
    if not self.has_files(root):
      raise FileNotFoundError(self.missing_files_message(root))
    return {s: self._generate_examples(os.path.join(root, f"{s}.jsonl")) for s in ("train", "test")}

  def _generate_examples(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for n, row in read_jsonl(path, ("question", "answer")):
      work, sep, final = row["answer"].rpartition("####")
      if not sep:
        raise ValueError(f"{path} line {n} has no '####' before the final answer.")
      answer = final.strip().replace(",", "")
      solution = _CALC.sub("", work).strip() + f"\n\\boxed{{{answer}}}"
      key = f"gsm8k-{os.path.basename(path)[:-6]}-{n}"
      yield key, {"id": key, "question": row["question"], "answer": answer, "solution": solution}


class MathDataset(_ManualBuilder):
  """MATH competition problems, from user-provided JSON files."""

  name = "math_dataset"

  def _extra(self) -> dict[str, Any]:
    return {"level": tfds.features.Text(), "subject": tfds.features.Text()}

  @classmethod
  def missing_files_message(cls, manual_dir: str | None) -> str:
    where = manual_dir or "the manual directory (pass manual_dir)"
    return (
      f"MATH needs either train/ and test/ directories of per-problem JSON files "
      f"(as in the Hendrycks MATH release) or train.jsonl and test.jsonl, each problem with "
      f"'problem' and 'solution', in {where}; put them there and rerun."
    )

  @classmethod
  def has_files(cls, manual_dir: str) -> bool:
    return all(
      os.path.isdir(os.path.join(manual_dir, s))
      or os.path.isfile(os.path.join(manual_dir, f"{s}.jsonl"))
      for s in ("train", "test")
    )

  @classmethod
  def standin_rows(cls, n: int) -> list[dict[str, Any]]:
    """MATH-format rows: `problem`, `solution` ending in `\\boxed{}`, `level`, `type`."""
    rng, out = np.random.default_rng(1), []
    for i in range(n):
      level = 1 + i % 3
      p = arithmetic.sample_problem(rng, level=level)
      out.append(
        {
          "problem": p["question"],
          "solution": p["solution"],
          "level": f"Level {level}",
          "type": "Prealgebra",
        }
      )
    return out

  def _split_generators(self, dl_manager):
    root = self._manual_dir(dl_manager)
    if not self.has_files(root):
      raise FileNotFoundError(self.missing_files_message(root))
    return {s: self._generate_examples(root, s) for s in ("train", "test")}

  def _generate_examples(self, root: str, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    folder = os.path.join(root, split)
    if os.path.isdir(folder):
      rows = []
      for dirpath, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
          if f.endswith(".json"):
            path = os.path.join(dirpath, f)
            rows.append((os.path.relpath(path, root)[:-5], _read_json(path)))
    else:
      path = os.path.join(root, f"{split}.jsonl")
      rows = [(f"{split}/{n}", row) for n, row in read_jsonl(path, ("problem", "solution"))]
    for rel, row in rows:
      answer = last_boxed(row["solution"])
      if answer is None:
        continue  # A handful of MATH solutions state no boxed answer; nothing to verify.
      key = "math-" + rel.replace(os.sep, "/")
      yield (
        key,
        {
          "id": key,
          "question": row["problem"],
          "answer": answer,
          "solution": row["solution"],
          "level": str(row.get("level", "")),
          "subject": str(row.get("type", row.get("subject", ""))),
        },
      )


def _read_json(path: str) -> dict[str, Any]:
  try:
    with open(path, encoding="utf-8") as f:
      row = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); fix or remove the file.") from None
  for key in ("problem", "solution"):
    if key not in row:
      raise ValueError(f"{path} has no {key!r} field; MATH problems need 'problem' and 'solution'.")
  return row


def read_jsonl(path: str, keys: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
  """Yields (line number, object) for each non-blank line of a .jsonl or .jsonl.gz file.

  A line that is not JSON, or lacks one of `keys`, is a one-sentence ValueError naming it.
  """
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {n} is not valid JSON ({e}); fix that line.") from None
      missing = [k for k in keys if k not in row]
      if missing:
        raise ValueError(f"{path} line {n} lacks {missing}; each line needs {list(keys)}.")
      yield n, row
