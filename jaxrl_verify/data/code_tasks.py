"""Code tasks for the `code` verifier: synthetic (generated offline), MBPP and HumanEval.

Every example has `id`, `prompt` (the task statement), `reference` (a reference solution),
`tests` (visible MBPP-style asserts, shown in the prompt), `hidden_tests` (held-out asserts, for
the `hidden_reward` that measures memorisation of the visible tests), `entry_point`, and for
HumanEval `check` (its `check(candidate)` source).

* `CodeSynthetic`: small function-writing problems from parameterised families; the expected
  values are computed by running the (trusted, generated) reference solution at build time.
* `Mbpp`: the user's `mbpp.jsonl` (github.com/google-research/google-research/tree/master/mbpp)
  in `manual_dir`; standard splits by task id (test 11-510, train 601-974, validation
  511-600). The first assert of `test_list` is visible; the rest and `challenge_test_list` are
  hidden.
* `HumanEval`: the user's `HumanEval.jsonl` (or `.jsonl.gz`, github.com/openai/human-eval) in
  `manual_dir`; one `test` split.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import tasks
from jaxrl_verify.data.public import read_jsonl

SIZES = {"tiny": (32, 16), "small": (2000, 200), "default": (20000, 1000)}
NUM_VISIBLE, NUM_HIDDEN = 3, 5
_TEXT = tfds.features.Text()
_FEATURES = {
  "id": _TEXT,
  "prompt": _TEXT,
  "reference": _TEXT,
  "tests": tfds.features.Sequence(_TEXT),
  "hidden_tests": tfds.features.Sequence(_TEXT),
  "entry_point": _TEXT,
  "check": _TEXT,
}
Family = Callable[[np.random.Generator], tuple[str, str, Callable[[np.random.Generator], tuple]]]


def _ints(rng, n, lo=-20, hi=20) -> list[int]:
  return [int(v) for v in rng.integers(lo, hi, size=n)]


def _word(rng, alphabet="abcde", lo=0, hi=12) -> str:
  return "".join(rng.choice(list(alphabet), size=int(rng.integers(lo, hi))))


def _sum_multiples(rng):
  a, b = (int(v) for v in rng.choice(np.arange(2, 10), size=2, replace=False))
  statement = (
    f"Write `sum_multiples(n)`: the sum of the integers in [0, n) divisible by {a} or {b}."
  )
  ref = (
    f"def sum_multiples(n):\n  return sum(i for i in range(n) if i % {a} == 0 or i % {b} == 0)\n"
  )
  return statement, ref, lambda r: (int(r.integers(0, 200)),)


def _count_char(rng):
  c = str(rng.choice(list("abcde")))
  statement = f"Write `count_char(s)`: how many times the character {c!r} occurs in the string s."
  return statement, f"def count_char(s):\n  return s.count({c!r})\n", lambda r: (_word(r),)


def _rotate(rng):
  k = int(rng.integers(1, 6))
  statement = f"Write `rotate(xs)`: the list xs rotated left by {k} positions (wrapping around)."
  ref = (
    f"def rotate(xs):\n  if not xs:\n    return []\n  k = {k} % len(xs)\n  return xs[k:] + xs[:k]\n"
  )
  return statement, ref, lambda r: (_ints(r, int(r.integers(0, 9))),)


def _fib_mod(rng):
  m = int(rng.integers(2, 50))
  statement = f"Write `fib_mod(n)`: the n-th Fibonacci number (fib(0)=0, fib(1)=1) modulo {m}."
  ref = (
    f"def fib_mod(n):\n  a, b = 0, 1\n  for _ in range(n):\n    a, b = b, (a + b) % {m}\n"
    "  return a\n"
  )
  return statement, ref, lambda r: (int(r.integers(0, 300)),)


def _caesar(rng):
  k = int(rng.integers(1, 26))
  statement = (
    f"Write `caesar(s)`: shift every lowercase letter of s forward by {k} in the alphabet "
    "(wrapping from z to a); leave other characters unchanged."
  )
  ref = (
    "def caesar(s):\n  return ''.join(chr((ord(c) - 97 + "
    f"{k}) % 26 + 97) if 'a' <= c <= 'z' else c for c in s)\n"
  )
  return statement, ref, lambda r: (_word(r, "abxyz -!", 0, 14),)


def _running_max(rng):
  del rng
  statement = "Write `running_max(xs)`: the list whose i-th element is max(xs[:i + 1])."
  ref = (
    "def running_max(xs):\n  out = []\n  for x in xs:\n"
    "    out.append(x if not out else max(out[-1], x))\n  return out\n"
  )
  return statement, ref, lambda r: (_ints(r, int(r.integers(0, 9))),)


def _poly(rng):
  coef = _ints(rng, int(rng.integers(2, 5)), -5, 6)
  terms = " + ".join(f"({c})*x**{i}" for i, c in enumerate(coef))
  statement = f"Write `poly(x)`: the value of {terms} at the integer x."
  ref = f"def poly(x):\n  return sum(c * x**i for i, c in enumerate({coef}))\n"
  return statement, ref, lambda r: (int(r.integers(-9, 10)),)


def _rle(rng):
  del rng
  statement = (
    "Write `rle(s)`: the run-length encoding of s as a list of (character, count) tuples, "
    "e.g. rle('aab') == [('a', 2), ('b', 1)]."
  )
  ref = (
    "def rle(s):\n  out = []\n  for c in s:\n    if out and out[-1][0] == c:\n"
    "      out[-1] = (c, out[-1][1] + 1)\n    else:\n      out.append((c, 1))\n  return out\n"
  )
  return statement, ref, lambda r: (_word(r, "aab", 0, 12),)


def _in_range(rng):
  lo = int(rng.integers(-10, 5))
  hi = lo + int(rng.integers(1, 15))
  statement = f"Write `in_range(xs)`: the sorted elements of xs that lie in [{lo}, {hi}]."
  ref = f"def in_range(xs):\n  return sorted(x for x in xs if {lo} <= x <= {hi})\n"
  return statement, ref, lambda r: (_ints(r, int(r.integers(0, 10))),)


FAMILIES: dict[str, Family] = {
  f.__name__.lstrip("_"): f
  for f in (
    _sum_multiples,
    _count_char,
    _rotate,
    _fib_mod,
    _caesar,
    _running_max,
    _poly,
    _rle,
    _in_range,
  )
}


def make_example(rng: np.random.Generator, family: str) -> dict[str, Any]:
  """One synthetic task: statement, reference, visible and hidden asserts (distinct inputs)."""
  statement, reference, draw_args = FAMILIES[family](rng)
  namespace: dict[str, Any] = {}
  exec(reference, namespace)  # Our own generated reference, not model output.
  entry_point = reference.split("(", 1)[0].removeprefix("def ")
  tests: list[str] = []
  for _ in range(200):
    args = draw_args(rng)
    call = f"{entry_point}({', '.join(map(repr, args))})"
    test = f"assert {call} == {namespace[entry_point](*args)!r}"
    if test not in tests:
      tests.append(test)
    if len(tests) == NUM_VISIBLE + NUM_HIDDEN:
      break
  visible, hidden = tests[:NUM_VISIBLE], tests[NUM_VISIBLE:]
  prompt = f"{statement}\nYour code should pass these tests:\n" + "\n".join(visible)
  return {
    "prompt": prompt,
    "reference": reference,
    "tests": visible,
    "hidden_tests": hidden,
    "entry_point": entry_point,
    "check": "",
  }


class CodeConfig(tfds.core.BuilderConfig):
  """Sizes and seed of the synthetic code tasks."""

  def __init__(self, *, num_train: int, num_test: int, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.num_train, self.num_test, self.seed = int(num_train), int(num_test), int(seed)


def _config(size=None, *, num_train=None, num_test=None, seed=0) -> CodeConfig:
  if size is not None and size not in SIZES:
    raise ValueError(f"Unknown size {size!r}; choose one of {sorted(SIZES)} or pass num_train.")
  base_train, base_test = SIZES[size or "small"]
  num_train = base_train if num_train is None else num_train
  num_test = base_test if num_test is None else num_test
  if num_train < 1 or num_test < 1:
    raise ValueError(f"num_train and num_test must be positive, got {num_train}, {num_test}.")
  name = f"n{num_train}-{num_test}_s{seed}"
  return CodeConfig(name=name, num_train=num_train, num_test=num_test, seed=seed)


class CodeSynthetic(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Synthetic function-writing tasks with reference solutions, visible and hidden tests."""

  VERSION = tfds.core.Version("1.0.0")
  url_infos = None  # Nothing is downloaded.

  @classmethod
  def make_config(
    cls,
    size: str | None = None,
    *,
    num_train: int | None = None,
    num_test: int | None = None,
    seed: int = 0,
  ) -> CodeConfig:
    """A config named after its options; `size` is one of `SIZES`, overridden by num_*."""
    return _config(size, num_train=num_train, num_test=num_test, seed=seed)

  BUILDER_CONFIGS = [_config("tiny"), _config("small")]

  def _info(self) -> tfds.core.DatasetInfo:
    features = dict(_FEATURES, family=_TEXT)
    return tfds.core.DatasetInfo(
      builder=self,
      description=(self.__doc__ or "").strip(),
      features=tfds.features.FeaturesDict(features),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    examples = self._unique(cfg.num_train + cfg.num_test)
    return {
      "train": self._generate_examples(examples[cfg.num_test :]),
      "test": self._generate_examples(examples[: cfg.num_test]),
    }

  def _generate_examples(self, examples):
    for ex in examples:
      yield ex["id"], ex

  def _unique(self, total: int) -> list[dict[str, Any]]:
    cfg = self.builder_config
    rng = np.random.default_rng([cfg.seed, 31337])
    families = sorted(FAMILIES)
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for attempt in range(total * 50):
      family = families[attempt % len(families)]
      ex = make_example(rng, family)
      if ex["prompt"] not in seen:
        seen.add(ex["prompt"])
        out.append(dict(ex, id=f"code-s{cfg.seed}-{len(out)}", family=family))
        if len(out) == total:
          return out
    raise ValueError(f"Only {len(out)} distinct code tasks found; ask for fewer than {total}.")


class _Manual(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  VERSION = tfds.core.Version("1.0.0")
  url_infos = None
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  FILES: tuple[str, ...] = ()
  SOURCE = ""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=(self.__doc__ or "").strip(),
      features=tfds.features.FeaturesDict(_FEATURES),
    )

  @classmethod
  def find(cls, manual_dir: str) -> str | None:
    paths = [os.path.join(manual_dir, f) for f in cls.FILES]
    return next((p for p in paths if os.path.isfile(p)), None)

  @classmethod
  def has_files(cls, manual_dir: str) -> bool:
    return cls.find(manual_dir) is not None

  @classmethod
  def missing_files_message(cls, manual_dir: str | None) -> str:
    where = manual_dir or "the manual directory (pass manual_dir)"
    return (
      f"{cls.__name__} needs {' or '.join(cls.FILES)} ({cls.SOURCE}) in {where}; "
      "put the file there and rerun."
    )

  def _path(self, dl_manager) -> str:
    try:
      root = os.fspath(dl_manager.manual_dir)
    except AssertionError:
      raise FileNotFoundError(self.missing_files_message(None)) from None
    path = self.find(root)
    if path is None:
      raise FileNotFoundError(self.missing_files_message(root))
    return path


class Mbpp(_Manual):
  """MBPP (Austin et al. 2021) from the user's mbpp.jsonl."""

  FILES = ("mbpp.jsonl",)
  SOURCE = "github.com/google-research/google-research/tree/master/mbpp"
  SPLITS = {"test": (11, 510), "validation": (511, 600), "train": (601, 974), "prompt": (1, 10)}

  def _split_generators(self, dl_manager):
    path = self._path(dl_manager)
    ids = [int(row["task_id"]) for _, row in read_jsonl(path)]
    # tfds rejects empty splits; a partial file (e.g. only the test tasks) keeps what it has.
    return {
      s: self._generate_examples(path, lo, hi)
      for s, (lo, hi) in self.SPLITS.items()
      if any(lo <= i <= hi for i in ids)
    }

  def _generate_examples(self, path: str, lo: int, hi: int):
    for n, row in read_jsonl(path):
      task_id = int(row["task_id"])
      if not lo <= task_id <= hi:
        continue
      tests = list(row["test_list"])
      if not tests:
        raise ValueError(f"{path} line {n} (task {task_id}) has an empty test_list.")
      prompt = f"{row['text']}\nYour code should pass this test:\n{tests[0]}"
      entry_point = tests[0].split("assert", 1)[-1].strip().split("(", 1)[0].strip()
      key = f"mbpp-{task_id}"
      yield (
        key,
        {
          "id": key,
          "prompt": prompt,
          "reference": row["code"],
          "tests": tests[:1],
          "hidden_tests": tests[1:] + list(row.get("challenge_test_list") or []),
          "entry_point": entry_point,
          "check": "",
        },
      )


class HumanEval(_Manual):
  """HumanEval (Chen et al. 2021) from the user's HumanEval.jsonl(.gz)."""

  FILES = ("HumanEval.jsonl", "HumanEval.jsonl.gz")
  SOURCE = "github.com/openai/human-eval, data/HumanEval.jsonl.gz"

  def _split_generators(self, dl_manager):
    return {"test": self._generate_examples(self._path(dl_manager))}

  def _generate_examples(self, path: str):
    for _, row in read_jsonl(path):
      key = row["task_id"].replace("/", "-")
      yield (
        key,
        {
          "id": key,
          "prompt": row["prompt"],
          "reference": row["prompt"] + row["canonical_solution"],
          "tests": [],
          "hidden_tests": [],
          "entry_point": row["entry_point"],
          "check": row["test"],
        },
      )


CODE_TEMPLATE = "{prompt}\nWrite the Python function in a ```python code block.\n"
tasks.register_task(
  tasks.Task(
    name="code_synthetic",
    builder=CodeSynthetic,
    prompt_template=CODE_TEMPLATE,
    verifier="code",
    reference_field="reference",
    verifier_fields=("tests", "hidden_tests"),
    sft_field="reference",
    description="synthetic function-writing tasks with visible and hidden asserts",
  )
)
tasks.register_task(
  tasks.Task(
    name="mbpp",
    builder=Mbpp,
    prompt_template=CODE_TEMPLATE,
    verifier="code",
    reference_field="reference",
    verifier_fields=("tests", "hidden_tests"),
    sft_field="reference",
    description="MBPP from the user's mbpp.jsonl (manual_dir); first assert visible",
  )
)
tasks.register_task(
  tasks.Task(
    name="humaneval",
    builder=HumanEval,
    prompt_template="Complete this Python function:\n```python\n{prompt}```\n",
    verifier="code",
    reference_field="reference",
    verifier_fields=("check", "entry_point"),
    sft_field="reference",
    description="HumanEval from the user's HumanEval.jsonl(.gz) (manual_dir)",
  )
)
