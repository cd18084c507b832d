"""The shared base of the synthetic tfds builders (arithmetic, countdown, equations).

A synthetic builder draws examples from a seeded numpy generator, one difficulty
level at a time (round-robin over the configured levels, minus any level whose
question space is exhausted), drops repeated questions,
and puts the first `num_test` unique examples in `test` and the next `num_train` in
`train`, so the splits never share a question and the same config always produces
the same examples. Data are written as array_record and read with
`builder.as_data_source(split)`; no TensorFlow is needed.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

# Named sizes; any other size is given with `num_train` / `num_test` options.
SIZES = {"tiny": (64, 16), "small": (2000, 200), "default": (20000, 1000)}


class SyntheticConfig(tfds.core.BuilderConfig):
  """Size, difficulty and seed of a synthetic dataset.

  Attributes:
    num_train: examples in the train split.
    num_test: examples in the test split.
    difficulty: the levels to draw from, uniformly (round-robin).
    seed: the generator seed; the same seed gives the same examples.
  """

  def __init__(
    self,
    *,
    num_train: int,
    num_test: int,
    difficulty: Sequence[int] = (1,),
    seed: int = 0,
    **kwargs,
  ):
    super().__init__(**kwargs)
    self.num_train = int(num_train)
    self.num_test = int(num_test)
    self.difficulty = tuple(int(d) for d in difficulty)
    self.seed = int(seed)


def _levels(difficulty: int | Sequence[int]) -> tuple[int, ...]:
  return (int(difficulty),) if isinstance(difficulty, int | np.integer) else tuple(difficulty)


class SyntheticBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base class: subclasses set `MAX_LEVEL` and implement `_extra_features`, `_sample`."""

  VERSION = tfds.core.Version("1.0.0")
  # tfds looks for a checksums file next to a builder's code, which needs the optional
  # importlib_resources package; synthetic builders download nothing.
  url_infos = None
  MAX_LEVEL = 1
  DEFAULT_DIFFICULTY: tuple[int, ...] = (1,)

  @classmethod
  def make_config(
    cls,
    size: str | None = None,
    *,
    num_train: int | None = None,
    num_test: int | None = None,
    difficulty: int | Sequence[int] | None = None,
    seed: int = 0,
  ) -> SyntheticConfig:
    """A config whose name encodes every option (so each variant has its own files).

    Args:
      size: a named size from `SIZES` (`tiny`, `small`, `default`); `num_train` and
        `num_test` override it.
      num_train: train examples. num_test: test examples.
      difficulty: one level (int) or several levels to mix, each in 1..MAX_LEVEL.
      seed: generation seed.
    """
    if size is not None and size not in SIZES:
      raise ValueError(f"Unknown size {size!r}; choose one of {sorted(SIZES)} or pass num_train.")
    base_train, base_test = SIZES[size or "small"]
    num_train = base_train if num_train is None else num_train
    num_test = base_test if num_test is None else num_test
    levels = cls.DEFAULT_DIFFICULTY if difficulty is None else _levels(difficulty)
    bad = [lvl for lvl in levels if not 1 <= lvl <= cls.MAX_LEVEL]
    if bad or not levels:
      raise ValueError(
        f"{cls.__name__} difficulty must be levels in 1..{cls.MAX_LEVEL}, got {levels}."
      )
    if num_train < 1 or num_test < 1:
      raise ValueError(f"num_train and num_test must be positive, got {num_train}, {num_test}.")
    name = f"n{num_train}-{num_test}_d{'-'.join(map(str, levels))}_s{seed}"
    return SyntheticConfig(
      name=name, num_train=num_train, num_test=num_test, difficulty=levels, seed=seed
    )

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(skip_registration=True, **kwargs)
    cls.BUILDER_CONFIGS = [
      cls.make_config(size, difficulty=cls.DEFAULT_DIFFICULTY) for size in ("tiny", "small")
    ]

  # ------------------------------------------------------------ subclass API

  @abc.abstractmethod
  def _extra_features(self) -> dict[str, Any]:
    """tfds features beyond id, question, answer, solution, difficulty."""

  @abc.abstractmethod
  def _sample(self, rng: np.random.Generator, level: int) -> dict[str, Any]:
    """One example at `level`: at least question, answer, solution (all str)."""

  # ------------------------------------------------------------ tfds API

  def _info(self) -> tfds.core.DatasetInfo:
    text = tfds.features.Text()
    features = {
      "id": text,
      "question": text,
      "answer": text,
      "solution": text,
      "difficulty": np.int32,
      **self._extra_features(),
    }
    return tfds.core.DatasetInfo(
      builder=self,
      description=(self.__doc__ or "").strip(),
      features=tfds.features.FeaturesDict(features),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is generated locally.
    cfg = self.builder_config
    examples = list(self._unique_examples(cfg.num_train + cfg.num_test))
    return {
      "train": self._generate_examples(examples[cfg.num_test :]),
      "test": self._generate_examples(examples[: cfg.num_test]),
    }

  def _generate_examples(self, examples: list[dict[str, Any]]):
    for ex in examples:
      yield ex["id"], ex

  def _unique_examples(self, total: int) -> Iterator[dict[str, Any]]:
    cfg = self.builder_config
    rng = np.random.default_rng([cfg.seed, 20250101])
    seen: set[str] = set()
    # A level whose questions keep repeating is exhausted and leaves the rotation, so
    # a small level (e.g. `x + b = d`) cannot stall a large dataset.
    active, misses = list(cfg.difficulty), dict.fromkeys(cfg.difficulty, 0)
    while len(seen) < total:
      if not active:
        raise ValueError(
          f"{self.name} found only {len(seen)} distinct questions at difficulty "
          f"{cfg.difficulty}, fewer than the {total} asked for; lower num_train/num_test "
          "or add harder levels."
        )
      level = active[len(seen) % len(active)]
      ex = self._sample(rng, level)
      if ex["question"] in seen:
        misses[level] += 1
        if misses[level] > 2000:
          active.remove(level)
        continue
      misses[level] = 0
      ex.update(id=f"{self.name}-s{cfg.seed}-{len(seen)}", difficulty=level)
      seen.add(ex["question"])
      yield ex
