"""Prompt batches for the RL loop: deterministic, resumable, sliced across hosts.

The order of epoch e is a permutation drawn from `numpy.random.default_rng([seed, e])`
(or the stored order when `shuffle=False`). Global batch k of an epoch is positions
[k*B, (k+1)*B) of that order; process i of P takes the i-th contiguous slice of it,
so the union over processes is the single-process batch. The iterator's state is
just (epoch, position): restoring it reproduces the following batches exactly.

Multi-host: every process builds the same dataset (generation is deterministic), so
each host may use a local `data_dir`; with a shared `data_dir`, let one process
prepare it first (`task.data_source(split, data_dir)`) before the others start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxrl_verify.data import tasks as tasks_lib
from jaxrl_verify.tokenizer import Tokenizer
from jaxrl_verify.types import PromptBatch


def _resolve(task: tasks_lib.Task | str) -> tasks_lib.Task:
  return tasks_lib.get_task(task) if isinstance(task, str) else task


class PromptIterator:
  """Yields `PromptBatch`es of one task split.

  Args:
    task: a `Task` or a registered task name.
    split: `train` or `test`.
    batch_size: the GLOBAL batch size B (prompts per step over all processes); each
      process yields B / num_processes prompts.
    tokenizer: encodes the prompts (with bos, left-padded to `max_prompt_len`).
    max_prompt_len: p; a longer prompt is an error naming the example.
    seed: shuffle seed.
    data_dir: where the task's dataset is (or will be) generated.
    shuffle: reshuffle every epoch.
    repeat: loop over epochs forever (dropping each epoch's last partial batch);
      otherwise stop after one epoch, ending with the partial batch if any.
    num_processes, process_index: this process's place among the data-loading hosts.
  """

  def __init__(
    self,
    task: tasks_lib.Task | str,
    split: str,
    *,
    batch_size: int,
    tokenizer: Tokenizer,
    max_prompt_len: int,
    seed: int,
    data_dir: str | os.PathLike,
    shuffle: bool = True,
    repeat: bool = True,
    num_processes: int = 1,
    process_index: int = 0,
  ):
    self.task = _resolve(task)
    self.split = split
    if batch_size < 1 or batch_size % num_processes:
      raise ValueError(
        f"batch_size={batch_size} must be a positive multiple of num_processes={num_processes}."
      )
    if not 0 <= process_index < num_processes:
      raise ValueError(f"process_index={process_index} must be in [0, {num_processes}).")
    self.examples = self.task.data_source(split, data_dir)
    if repeat and len(self.examples) < batch_size:
      raise ValueError(
        f"Task {self.task.name!r} split {split!r} has {len(self.examples)} examples, fewer "
        f"than batch_size={batch_size}; generate more examples or lower the batch size."
      )
    self.batch_size = batch_size
    self.tokenizer = tokenizer
    self.max_prompt_len = max_prompt_len
    self.seed = seed
    self.shuffle = shuffle
    self.repeat = repeat
    self.num_processes = num_processes
    self.process_index = process_index
    self._epoch, self._position = 0, 0
    self._order_epoch, self._order = -1, np.zeros(0, np.int64)

  # ------------------------------------------------------------ state

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable position: the next batch starts at `position` of `epoch`."""
    return {"epoch": self._epoch, "position": self._position, "num_examples": len(self.examples)}

  def set_state(self, state: dict[str, Any]) -> None:
    """Resumes from `get_state()`; the following batches equal the original run's."""
    n = state.get("num_examples", len(self.examples))
    if n != len(self.examples):
      raise ValueError(
        f"The saved data state is for {n} examples but task {self.task.name!r} split "
        f"{self.split!r} now has {len(self.examples)}; regenerate the data with the "
        "checkpoint's task options."
      )
    self._epoch, self._position = int(state["epoch"]), int(state["position"])

  # ------------------------------------------------------------ iteration

  def _epoch_order(self, epoch: int) -> np.ndarray:
    if self._order_epoch != epoch:
      n = len(self.examples)
      self._order = (
        np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
      )
      self._order_epoch = epoch
    return self._order

  def next_global_indices(self) -> np.ndarray | None:
    """Example indices of the next global batch (advancing the state), or None at the end."""
    n = len(self.examples)
    if self._position >= n or (self.repeat and self._position + self.batch_size > n):
      if not self.repeat:
        return None
      self._epoch, self._position = self._epoch + 1, 0
    order = self._epoch_order(self._epoch)
    indices = order[self._position : self._position + self.batch_size]
    self._position += len(indices)
    return indices

  def __iter__(self) -> Iterator[PromptBatch]:
    return self

  def __next__(self) -> PromptBatch:
    indices = self.next_global_indices()
    if indices is None:
      raise StopIteration
    local = np.array_split(indices, self.num_processes)[self.process_index]
    return self.make_batch([self.examples[int(i)] for i in local])

  def make_batch(self, examples: list[dict[str, Any]]) -> PromptBatch:
    """Templates, tokenises and packs examples into a `PromptBatch`."""
    prompts = [self.task.format_prompt(ex) for ex in examples]
    try:
      tokens_bp, mask_bp = self.tokenizer.encode_batch(prompts, self.max_prompt_len, add_bos=True)
    except ValueError as e:
      raise ValueError(
        f"A prompt of task {self.task.name!r} does not fit max_prompt_len="
        f"{self.max_prompt_len} ({e}); raise max_prompt_len."
      ) from None
    return PromptBatch(
      tokens_bp=tokens_bp,
      mask_bp=mask_bp,
      prompts=prompts,
      references=[self.task.reference(ex) for ex in examples],
      fields=[self.task.verifier_kwargs(ex) for ex in examples],
      ids=[ex["id"] for ex in examples],
    )


def texts_for_tokenizer(
  task: tasks_lib.Task | str,
  data_dir: str | os.PathLike,
  *,
  splits: tuple[str, ...] = ("train",),
  limit: int | None = None,
) -> Iterator[str]:
  """Corpus text to train the tokenizer on: each example's prompt, demonstration, answer."""
  task = _resolve(task)
  for split in splits:
    examples = task.data_source(split, data_dir)
    for i in range(len(examples) if limit is None else min(limit, len(examples))):
      ex = examples[i]
      yield task.format_prompt(ex)
      if task.sft_field:
        yield str(ex[task.sft_field])
      yield str(task.reference(ex))


def sft_examples(
  task: tasks_lib.Task | str,
  split: str,
  *,
  data_dir: str | os.PathLike,
  seed: int = 0,
  shuffle: bool = True,
) -> Iterator[tuple[str, str]]:
  """(prompt, demonstration) pairs for a supervised warm start, one epoch."""
  task = _resolve(task)
  if not task.sft_field:
    raise ValueError(f"Task {task.name!r} has no sft_field, so no demonstrations to train on.")
  examples = task.data_source(split, data_dir)
  order = (
    np.random.default_rng([seed, 0]).permutation(len(examples)) if shuffle else range(len(examples))
  )
  if len(examples) and task.sft_field not in examples[0]:
    raise ValueError(
      f"Task {task.name!r} examples have no field {task.sft_field!r} to warm-start on; "
      f"set sft.field to one of {sorted(examples[0])}."
    )
  for i in order:
    ex = examples[int(i)]
    yield task.format_prompt(ex), str(ex[task.sft_field])
