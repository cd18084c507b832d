"""Tasks: a dataset (tfds builder) + a prompt template + a verifier, registered by name.

  task = get_task("arithmetic").with_options(size="tiny", difficulty=1)
  examples = task.data_source("train", data_dir=workdir)   # generated once, then read
  prompt = task.format_prompt(examples[0])
  verdict = verifiers.base.get(task.verifier)(completion, task.reference(examples[0]),
                                              **task.verifier_kwargs(examples[0]))

Other modules add tasks with one call, `register_task(Task(...))`; the code tasks in
`jaxrl_verify.data.code_tasks` are imported the first time a task is looked up.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import arithmetic, chains, countdown, linear_equations, public, simulators
from jaxrl_verify.registry import Registry

Example = dict[str, Any]
# Options about where a public dataset's files are, not builder configuration.
_FILE_OPTIONS = ("manual_dir", "standin")


@dataclasses.dataclass(frozen=True)
class Task:
  """What to train on and how to check it.

  Attributes:
    name: registry name.
    builder: a `tfds.core.DatasetBuilder` subclass, or a factory
      `(data_dir=..., **options) -> DatasetBuilder`. Classes with a `make_config`
      classmethod (the synthetic builders) take `options` through it.
    prompt_template: a `str.format` template over example fields.
    verifier: the registered verifier name (`jaxrl_verify.verifiers.base.get`).
    reference_field: the example field passed to the verifier as the reference.
    verifier_fields: example fields passed to the verifier as keyword arguments.
    sft_field: the field holding a worked demonstration (for a supervised warm
      start), or None.
    options: builder options (e.g. `size`, `num_train`, `num_test`, `difficulty`,
      `seed` for synthetic tasks; `manual_dir` for public ones, and `standin=True` to
      generate a tiny stand-in of their files there when they are missing, for
      `:runlocal` runs).
    description: one line for listings.
    baselines: optional `example -> {name: completion}`: reference predictors that
      `evaluate` scores with the same verifier beside the policy (`baseline/NAME/...`).
  """

  name: str
  builder: Callable[..., tfds.core.DatasetBuilder]
  prompt_template: str
  verifier: str
  reference_field: str = "answer"
  verifier_fields: tuple[str, ...] = ()
  sft_field: str | None = None
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  description: str = ""
  baselines: Callable[[Mapping[str, Any]], dict[str, str]] | None = None

  def with_options(self, **options: Any) -> Task:
    """A copy with builder options updated (e.g. `difficulty=2, size="tiny"`)."""
    return dataclasses.replace(self, options={**self.options, **options})

  def make_builder(self, data_dir: str | os.PathLike) -> tfds.core.DatasetBuilder:
    """The tfds builder for this task's options, writing under `data_dir`."""
    opts = {k: v for k, v in self.options.items() if k not in _FILE_OPTIONS}
    data_dir = os.fspath(data_dir)
    if not (isinstance(self.builder, type) and issubclass(self.builder, tfds.core.DatasetBuilder)):
      return self.builder(data_dir=data_dir, **opts)
    make_config = getattr(self.builder, "make_config", None)
    allowed = set(inspect.signature(make_config).parameters) if make_config else set()
    unknown = sorted(set(opts) - allowed)
    if unknown:
      raise ValueError(
        f"Task {self.name!r} does not take option(s) {unknown}; its options are "
        f"{sorted(allowed | set(_FILE_OPTIONS))}."
      )
    config = make_config(**opts) if make_config else None
    # tfds refuses a new config object named like one of the class's own configs.
    config = next(
      (c for c in self.builder.BUILDER_CONFIGS if config and c.name == config.name), config
    )
    return self.builder(config=config, data_dir=data_dir, file_format="array_record")

  def data_source(self, split: str, data_dir: str | os.PathLike) -> Examples:
    """The examples of `split`, generating the dataset under `data_dir` on first use."""
    builder = self.make_builder(data_dir)
    if not builder.is_prepared():
      manual_dir = self.options.get("manual_dir") or os.path.join(
        os.fspath(data_dir), "manual", builder.name
      )
      has_files = getattr(builder, "has_files", None)
      if has_files is not None and not has_files(manual_dir):
        if not self.options.get("standin"):
          raise FileNotFoundError(builder.missing_files_message(manual_dir))
        builder.write_standin(manual_dir)
      builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
      )
    splits = list(builder.info.splits.keys())
    if split not in splits:
      raise ValueError(f"Task {self.name!r} has no split {split!r}; choose one of {splits}.")
    return Examples(builder.as_data_source(split))

  def format_prompt(self, example: Mapping[str, Any]) -> str:
    try:
      return self.prompt_template.format(**example)
    except KeyError as e:
      raise ValueError(
        f"Task {self.name!r} prompt template uses field {e} that the examples lack; "
        f"fields are {sorted(example)}."
      ) from None

  def reference(self, example: Mapping[str, Any]) -> Any:
    return example[self.reference_field]

  def verifier_kwargs(self, example: Mapping[str, Any]) -> dict[str, Any]:
    return {k: example[k] for k in self.verifier_fields}


class Examples(Sequence):
  """A random-access view of a tfds data source yielding plain Python values.

  Text becomes `str`, integer arrays `list[int]`, numpy scalars Python scalars.
  """

  def __init__(self, source):
    self._source = source

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> Example:  # type: ignore[override]
    if not -len(self) <= index < len(self):
      raise IndexError(index)
    return {k: _plain(v) for k, v in self._source[int(index) % len(self)].items()}


def _plain(v: Any) -> Any:
  if isinstance(v, bytes):
    return v.decode("utf-8")
  if isinstance(v, np.ndarray):
    return [_plain(x) for x in v.tolist()] if v.ndim else _plain(v.item())
  if isinstance(v, list | tuple):
    return [_plain(x) for x in v]
  if isinstance(v, np.generic):
    return v.item()
  return v


# ------------------------------------------------------------------ registry

TASKS: Registry = Registry("task", how_to_register="jaxrl_verify.data.tasks.register_task")


def register_task(task: Task, *, overwrite: bool = False) -> Task:
  """Adds `task` to the registry; a different task with the same name is an error."""
  return TASKS.register(task.name, task, overwrite=overwrite)


def get_task(name: str, **options: Any) -> Task:
  """The task registered as `name`, with builder `options` applied.

  Raises:
    UnknownNameError: (a ValueError) naming the known tasks.
  """
  _import_plugins()
  task = TASKS.get(name)
  return task.with_options(**options) if options else task


def task_names() -> list[str]:
  _import_plugins()
  return TASKS.names()


def _import_plugins() -> None:
  # Imported lazily: code_tasks imports this module to register its tasks.
  import importlib

  for module in ("jaxrl_verify.data.code_tasks",):
    try:
      importlib.import_module(module)
    except ModuleNotFoundError as e:
      if e.name != module:
        raise


# ------------------------------------------------------------------ built-in tasks

BOXED = "Give the final answer in \\boxed{{}}."
SHORT_TEMPLATE = "Q: {question}\nA: "
MATH_TEMPLATE = "Question: {question}\n" + BOXED + "\nAnswer: "

register_task(
  Task(
    name="arithmetic",
    builder=arithmetic.Arithmetic,
    prompt_template=SHORT_TEMPLATE,
    verifier="math",
    sft_field="solution",
    description="multi-step arithmetic word problems, levels 1..5",
  )
)
register_task(
  Task(
    name="chains",
    builder=chains.Chains,
    prompt_template=SHORT_TEMPLATE,
    verifier="math",
    sft_field="solution",
    description="arithmetic chains of 3-8 exactly checkable steps, levels 1..6",
  )
)
register_task(
  Task(
    name="countdown",
    builder=countdown.Countdown,
    prompt_template=SHORT_TEMPLATE,
    verifier="countdown",
    reference_field="target",
    verifier_fields=("numbers",),
    sft_field="solution",
    description="reach a target from given numbers with + - * /, levels 1..4",
  )
)
register_task(
  Task(
    name="linear_equations",
    builder=linear_equations.LinearEquations,
    prompt_template=SHORT_TEMPLATE,
    verifier="math",
    sft_field="solution",
    description="solve a*x + b = c*x + d, levels 1..4",
  )
)
register_task(
  Task(
    name="simulators",
    builder=simulators.Simulators,
    prompt_template="{question}\nWrite the program in a ```python code block.\n",
    verifier="simulator",
    verifier_fields=("system", "spec"),
    sft_field="solution",
    description="write step(state, dt) for 6 systems from observed trajectories",
    baselines=simulators.baseline_programs,
  )
)
register_task(
  Task(
    name="gsm8k",
    builder=public.Gsm8k,
    prompt_template=MATH_TEMPLATE,
    verifier="math",
    sft_field="solution",
    description="GSM8K from user-provided jsonl files (manual_dir)",
  )
)
register_task(
  Task(
    name="math",
    builder=public.MathDataset,
    prompt_template=MATH_TEMPLATE,
    verifier="math",
    sft_field="solution",
    description="MATH from user-provided JSON files (manual_dir)",
  )
)
