r"""Steps: how a solution's text splits into steps, and where each step ends in token space.

A solution is a list of steps. A step format (registered in `STEP_FORMATS`) says how a
completion's text splits into steps (`split`) and how steps are written back (`join`):

| name | a step is | join |
|---|---|---|
| `lines` | one non-empty line | `"\n".join` |
| `sentences` | one sentence (`.`, `!` or `?` then white space; not inside a number) | `" ".join` |
| `step_prefix` | the text after a `Step k:` marker | `"Step 1: ...\nStep 2: ..."` |
| `delimiter` | the text between occurrences of a task's own delimiter | `delimiter.join` |

`split(join(steps)) == steps` for steps that hold no separator of their own. A process
reward model scores a solution at its *step ends*: `step_end_positions` gives, for the
solution's completion tokens, the index of the last token of every step, found from the
character offsets of the decoded tokens so that a tokenizer merging across a step
boundary still maps each step to one token.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np

from jaxrl_verify.registry import Registry

STEP_FORMATS: Registry = Registry(
  "step format", how_to_register="@jaxrl_verify.process.steps.STEP_FORMATS.register(name)"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_STEP_PREFIX = re.compile(r"(?:^|\n)\s*Step\s+\d+\s*:\s*")


@dataclasses.dataclass(frozen=True)
class StepFormat:
  """A registered splitter and its inverse.

  Attributes:
    split: text -> steps (stripped, non-empty).
    join: steps -> text.
  """

  split: Callable[[str], list[str]]
  join: Callable[[Sequence[str]], str]


def _clean(parts) -> list[str]:
  return [p.strip() for p in parts if p.strip()]


STEP_FORMATS.register(
  "lines", StepFormat(split=lambda t: _clean(t.split("\n")), join=lambda s: "\n".join(s))
)
STEP_FORMATS.register(
  "sentences",
  StepFormat(split=lambda t: _clean(_SENTENCE_END.split(t)), join=lambda s: " ".join(s)),
)
STEP_FORMATS.register(
  "step_prefix",
  StepFormat(
    split=lambda t: _clean(_STEP_PREFIX.split("\n" + t)),
    join=lambda s: "\n".join(f"Step {k}: {x}" for k, x in enumerate(s, 1)),
  ),
)


def step_format(name: str, delimiter: str | None = None) -> StepFormat:
  """The format `name`; `delimiter` builds the `delimiter` format (a task's own separator).

  Raises:
    ValueError: an unknown name, or `delimiter` without (or missing for) that format.
  """
  if name == "delimiter":
    if not delimiter:
      raise ValueError("The 'delimiter' step format needs a non-empty delimiter string.")
    # Split on the delimiter without its surrounding spaces, so one that also ends the last
    # step (Math-Shepherd's ` ки`) leaves no empty or tagged step behind.
    mark = delimiter.strip() or delimiter
    return StepFormat(split=lambda t: _clean(t.split(mark)), join=lambda s: delimiter.join(s))
  if delimiter:
    raise ValueError(f"A delimiter was given for the {name!r} step format; use 'delimiter'.")
  return STEP_FORMATS.get(name)


def split_steps(text: str, fmt: StepFormat) -> list[str]:
  """The steps of `text`.

  Raises:
    ValueError: the text holds no step (empty or only separators).
  """
  steps = fmt.split(text)
  if not steps:
    raise ValueError(f"The solution {text[:60]!r} has no steps; a solution needs at least one.")
  return steps


def prefix_text(steps: Sequence[str], k: int, fmt: StepFormat) -> str:
  """The text of steps 0..k followed by the separator that opens step k + 1, for rollouts
  that continue the solution after step k (e.g. `"a\nb\n"`, `"Step 1: a\nStep 2: "`)."""
  return fmt.join([*steps[: k + 1], ""])


def step_char_ends(steps: Sequence[str], fmt: StepFormat) -> tuple[str, list[int]]:
  """(joined text, character offset just past each step in it)."""
  text = fmt.join(steps)
  ends, pos = [], 0
  for s in steps:
    pos = text.index(s, pos) + len(s)
    ends.append(pos)
  return text, ends


def step_end_positions(
  tokenizer, steps: Sequence[str], fmt: StepFormat, *, trailing_separator: bool = False
) -> tuple[list[int], list[int]]:
  """The solution's completion tokens and the token index where each step ends.

  Args:
    tokenizer: the tokenizer.
    steps: the solution's steps.
    fmt: their format.
    trailing_separator: end the text with the separator that would open another step, so
      the last step ends like every other (a tokenizer may merge a step's end with the
      separator, e.g. `.\n`); a reward model scoring partial and whole solutions alike
      needs this.

  Returns:
    (ids, ends): `ids = tokenizer.encode(text)` of the joined steps; `ends[k]` is the index in
    `ids` of the token that completes step k's text (the first token whose decoded
    prefix covers the step's last character). Strictly increasing when every step has
    its own token; a step merged into one token with the next shares its end.

  Raises:
    ValueError: `steps` is empty.
  """
  if not steps:
    raise ValueError("A solution needs at least one step.")
  text, char_ends = step_char_ends(steps, fmt)
  if trailing_separator:
    text = prefix_text(steps, len(steps) - 1, fmt)
  ids = tokenizer.encode(text)
  # Characters covered by the first t + 1 tokens (a byte-fallback token may decode to a
  # partial character, hence the running maximum).
  covered = np.maximum.accumulate([len(tokenizer.decode(ids[: t + 1])) for t in range(len(ids))])
  ends = [int(min(np.searchsorted(covered, c), len(ids) - 1)) for c in char_ends]
  return ids, ends
