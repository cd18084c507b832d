r"""Step-labelled solutions from public files: Math-Shepherd, PRM800K, TRL's stepwise format.

Each reader turns one JSON line into a `LabelledSolution` (prompt, steps, labels in
[0, 1], reference answer or None), so a PRM trains on public data with the same code as on
this codebase's own Monte-Carlo labels (`process.label_cli` output is the fourth format):

- `math_shepherd`: `{"input": "Q Step 1: ... ки\nStep 2: ... ки", "label": <the same text
  with + or - for each tag>}`. The steps are the texts between the `ки` tags (their
  `Step k:` markers dropped); `+` is 1 and `-` is 0. No reference answer.
- `prm800k`: `{"question": {"problem", "ground_truth_answer"}, "label": {"steps":
  [{"completions": [{"text", "rating"}], "chosen_completion"}, ...]}}`. Each step is its
  chosen completion (else the human one, else the first); rating 1 -> 1, -1 -> 0 and a
  neutral 0 -> `neutral` (default 1).
- `trl`: `{"prompt", "completions": [step, ...], "labels": [bool, ...]}`, as given.
- `labelled`: `process.label_cli` output, `{"prompt", "steps", "reference", "labels",
  "soft_labels"}`; with `soft=True`, soft labels where probed.

`StepwiseLabels` is a tfds builder over a directory of such files (`manual_dir`, as the
other public tasks): `train.jsonl` and `test.jsonl` (or `.jsonl.gz`) in one format.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import public

TAG = "ки"
_STEP_MARK = "Step 1:"


@dataclasses.dataclass(frozen=True)
class LabelledSolution:
  """A solution with a label per step.

  Attributes:
    prompt: the problem text.
    steps: the solution's steps.
    labels: one label in [0, 1] per step.
    reference: the reference answer, or None when the format has none (Math-Shepherd).
  """

  prompt: str
  steps: tuple[str, ...]
  labels: tuple[float, ...]
  reference: str | None = None


def _check(where: str, steps, labels) -> None:
  if not steps:
    raise ValueError(f"{where} has no steps; a labelled solution needs at least one.")
  if len(steps) != len(labels):
    raise ValueError(
      f"{where} has {len(steps)} steps but {len(labels)} labels; the counts must match."
    )


def read_math_shepherd(row: dict[str, Any], where: str) -> LabelledSolution:
  """One Math-Shepherd line: steps end with the tag `ки`; the label text has `+`/`-` there."""
  text, label = row.get("input"), row.get("label")
  if not isinstance(text, str) or not isinstance(label, str):
    raise ValueError(f'{where} needs "input" and "label" strings (the Math-Shepherd format).')
  start = text.find(_STEP_MARK)
  prompt = text[:start].strip() if start >= 0 else ""
  body = text[start:] if start >= 0 else text
  parts = body.split(TAG)
  steps = [p.strip() for p in parts[:-1]]
  steps = [s.split(":", 1)[1].strip() if s.startswith("Step ") and ":" in s else s for s in steps]
  # Each earlier two-character tag became one character in the label text.
  offset = start if start >= 0 else 0
  tags = [offset + len(TAG.join(parts[: j + 1])) for j in range(len(parts) - 1)]
  marks = [label[p - j] if 0 <= p - j < len(label) else "?" for j, p in enumerate(tags)]
  if any(m not in "+-" for m in marks):
    raise ValueError(f"{where}: the label text has no +/- where the input has a {TAG} tag.")
  _check(where, steps, marks)
  return LabelledSolution(prompt, tuple(steps), tuple(float(m == "+") for m in marks))


def read_prm800k(row: dict[str, Any], where: str, *, neutral: float = 1.0) -> LabelledSolution:
  """One PRM800K line; a neutral (0) rating counts as `neutral`."""
  q, lab = row.get("question"), row.get("label")
  if not isinstance(q, dict) or not isinstance(lab, dict) or "steps" not in lab:
    raise ValueError(f'{where} needs "question" and "label": {{"steps": [...]}} (PRM800K).')
  steps, labels = [], []
  for k, step in enumerate(lab["steps"]):
    options = step.get("completions") or []
    chosen = step.get("chosen_completion")
    if chosen is not None and 0 <= chosen < len(options):
      pick = options[chosen]
    elif step.get("human_completion"):
      pick = step["human_completion"]
    elif options:
      pick = options[0]
    else:
      raise ValueError(f"{where} step {k} has no completion to read.")
    rating = pick.get("rating")
    if rating not in (-1, 0, 1):
      rating = 1  # A human-written completion carries no rating: taken as right.
    steps.append(str(pick["text"]).strip())
    labels.append({1: 1.0, 0: float(neutral), -1: 0.0}[rating])
  _check(where, steps, labels)
  answer = q.get("ground_truth_answer")
  return LabelledSolution(
    str(q.get("problem", "")), tuple(steps), tuple(labels), None if answer is None else str(answer)
  )


def read_trl(row: dict[str, Any], where: str) -> LabelledSolution:
  """One TRL stepwise-supervision line: prompt, completions (the steps), labels (bools)."""
  steps, labels = row.get("completions"), row.get("labels")
  if not isinstance(row.get("prompt"), str) or not isinstance(steps, list):
    raise ValueError(f'{where} needs "prompt" (string) and "completions" (list of steps).')
  if not isinstance(labels, list):
    raise ValueError(f'{where} needs "labels": one boolean per step.')
  _check(where, steps, labels)
  return LabelledSolution(
    row["prompt"], tuple(map(str, steps)), tuple(float(bool(x)) for x in labels)
  )


def read_labelled(row: dict[str, Any], where: str, *, soft: bool = False) -> LabelledSolution:
  """One line written by `process.label_cli`; `soft` reads `soft_labels` (None -> the hard one)."""
  steps, hard = row.get("steps"), row.get("labels")
  if not isinstance(steps, list) or not isinstance(hard, list):
    raise ValueError(f'{where} needs "steps" and "labels" lists (process.label_cli output).')
  labels = [float(h) for h in hard]
  if soft:
    soft_labels = row.get("soft_labels") or [None] * len(labels)
    labels = [float(h) if s is None else float(s) for h, s in zip(labels, soft_labels)]
  _check(where, steps, labels)
  ref = row.get("reference")
  return LabelledSolution(
    str(row.get("prompt", "")), tuple(steps), tuple(labels), None if ref is None else str(ref)
  )


READERS: dict[str, Callable[..., LabelledSolution]] = {
  "math_shepherd": read_math_shepherd,
  "prm800k": read_prm800k,
  "trl": read_trl,
  "labelled": read_labelled,
}


def read_file(path: str, fmt: str, **options: Any) -> Iterator[LabelledSolution]:
  """Every solution of a `.jsonl`/`.jsonl.gz` file in format `fmt`.

  Raises:
    ValueError: an unknown format, or a bad line (naming the file and line).
  """
  if fmt not in READERS:
    raise ValueError(f"Unknown stepwise format {fmt!r}; choose one of {sorted(READERS)}.")
  for n, row in public.read_jsonl(path):
    yield READERS[fmt](row, f"{path} line {n}", **options)


class StepwiseConfig(tfds.core.BuilderConfig):
  """Which format the files are in, and how to read ambiguous labels.

  Attributes:
    fmt: a `READERS` name.
    soft: read soft labels (the `labelled` format).
    neutral: the label of a neutral PRM800K rating.
  """

  def __init__(self, *, fmt: str, soft: bool = False, neutral: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.fmt, self.soft, self.neutral = fmt, bool(soft), float(neutral)


class StepwiseLabels(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Step-labelled solutions from `train.jsonl`/`test.jsonl` in `manual_dir`."""

  VERSION = tfds.core.Version("1.0.0")
  url_infos = None
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  @classmethod
  def make_config(cls, fmt: str = "labelled", *, soft: bool = False, neutral: float = 1.0):
    if fmt not in READERS:
      raise ValueError(f"Unknown stepwise format {fmt!r}; choose one of {sorted(READERS)}.")
    name = f"{fmt}{'_soft' if soft else ''}_n{neutral:g}"
    return StepwiseConfig(name=name, fmt=fmt, soft=soft, neutral=neutral)

  def _info(self) -> tfds.core.DatasetInfo:
    text = tfds.features.Text()
    return tfds.core.DatasetInfo(
      builder=self,
      description=(self.__doc__ or "").strip(),
      features=tfds.features.FeaturesDict(
        {
          "id": text,
          "prompt": text,
          "steps": tfds.features.Sequence(text),
          "labels": tfds.features.Sequence(np.float32),
          "reference": text,
        }
      ),
    )

  @staticmethod
  def _split_file(root: str, split: str) -> str | None:
    for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
      if os.path.isfile(os.path.join(root, name)):
        return os.path.join(root, name)
    return None

  @classmethod
  def has_files(cls, manual_dir: str) -> bool:
    return all(cls._split_file(manual_dir, s) for s in ("train", "test"))

  @classmethod
  def missing_files_message(cls, manual_dir: str | None) -> str:
    return (
      f"Stepwise labels need train.jsonl and test.jsonl (Math-Shepherd, PRM800K, TRL stepwise "
      f"or process.label_cli output) in {manual_dir or 'the manual directory'}; put them there."
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    if not self.has_files(root):
      raise FileNotFoundError(self.missing_files_message(root))
    return {s: self._generate_examples(self._split_file(root, s), s) for s in ("train", "test")}

  def _generate_examples(self, path: str, split: str):
    c = self.builder_config
    options = {"soft": c.soft} if c.fmt == "labelled" else {}
    options = {"neutral": c.neutral} if c.fmt == "prm800k" else options
    for i, sol in enumerate(read_file(path, c.fmt, **options)):
      key = f"{split}-{i}"
      yield (
        key,
        {
          "id": key,
          "prompt": sol.prompt,
          "steps": list(sol.steps),
          "labels": np.asarray(sol.labels, np.float32),
          "reference": sol.reference or "",
        },
      )


def data_source(manual_dir: str, data_dir: str, split: str, fmt: str, **options: Any):
  """Random access to a split of step-labelled files in `manual_dir` (prepared under `data_dir`
  once, as array_record; no TensorFlow needed).

  Raises:
    FileNotFoundError: `manual_dir` lacks train.jsonl / test.jsonl.
  """
  config = StepwiseLabels.make_config(fmt, **options)
  builder = StepwiseLabels(config=config, data_dir=data_dir, file_format="array_record")
  if not builder.is_prepared():
    if not StepwiseLabels.has_files(manual_dir):
      raise FileNotFoundError(StepwiseLabels.missing_files_message(manual_dir))
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
  return builder.as_data_source(split)
