r"""Monte-Carlo step labels from the final-answer verifier (Math-Shepherd; OmegaPRM's search).

For a solution s_1..s_K of a problem with a known answer, step k is labelled by rolling
out N continuations of the prefix s_1..s_k with the policy and asking the verifier how
many reach the answer:

  hard label  h_k = 1[any of the N rollouts is correct]       (Math-Shepherd's HE)
  soft label  c_k = (correct rollouts) / N                     (Math-Shepherd's SE)

The last step needs no rollout: the solution itself is its only continuation, so
h_K = c_K = 1[the solution is correct].

Two modes (`LabelConfig.mode`):
- `full`: every prefix, K - 1 prefixes x N rollouts per solution.
- `binary_search` (OmegaPRM): labels are taken to be monotone (1 until the first bad
  step, 0 from it on), so the first zero is found by bisection: O(N log K) rollouts
  instead of O(N K). A correct solution needs none (every prefix of it reaches the
  answer: the solution itself). Unprobed steps get their hard label from the search and
  no soft label (None).

The planners (`label_full`, `label_binary_search`) are pure: they ask a
`count_correct(requests) -> correct counts` function for rollouts, one call per round
with every prefix of the round, so a batch of solutions is labelled with few sampler
calls. `RolloutCounter` is that function over the real sampler and verifier pool: each
prefix is prefilled once and shared by its N rollouts (`prompt_repeats`), and the pool
verifies one chunk's completions while the device samples the next.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxrl_verify import distributed
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.sampler import jsonl

MODES = ("full", "binary_search")


@dataclasses.dataclass(frozen=True)
class Solution:
  """A solution to label.

  Attributes:
    prompt: the task prompt the policy answers (formatted, as in training).
    steps: the solution's steps (at least one).
    reference: the reference answer for the verifier.
    fields: further verifier fields of the problem.
  """

  prompt: str
  steps: tuple[str, ...]
  reference: Any
  fields: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not self.steps:
      raise ValueError(f"A solution to {self.prompt[:50]!r} has no steps; give at least one.")


@dataclasses.dataclass(frozen=True)
class StepLabels:
  """Labels of one solution's steps.

  Attributes:
    labels: hard labels, 0/1 per step.
    soft_labels: fraction of rollouts correct per step; None where a step was not probed
      (binary search).
    rollouts: rollouts spent per step (0 for the last step, and where not probed).
  """

  labels: list[int]
  soft_labels: list[float | None]
  rollouts: list[int]


@dataclasses.dataclass(frozen=True)
class LabelConfig:
  """How to label.

  Attributes:
    num_rollouts: N, continuations sampled per prefix.
    mode: `full` or `binary_search`.
    step_format: a `steps.STEP_FORMATS` name, or `delimiter`.
    delimiter: the task's own step delimiter (with `step_format="delimiter"`).
    prefixes_per_call: prefixes per sampler call (rows = prefixes_per_call x num_rollouts).
  """

  num_rollouts: int = 8
  mode: str = "full"
  step_format: str = "lines"
  delimiter: str = ""
  prefixes_per_call: int = 8

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"LabelConfig.mode is {self.mode!r}; choose one of {MODES}.")
    if self.num_rollouts < 1 or self.prefixes_per_call < 1:
      raise ValueError("LabelConfig.num_rollouts and prefixes_per_call must be at least 1.")


# A rollout request: (solution index, step index k): continue after steps 0..k.
Request = tuple[int, int]
CountFn = Callable[[Sequence[Request]], np.ndarray]


# ----------------------------------------------------------------------------- planners


def label_full(
  solutions: Sequence[Solution], final_correct: Sequence[bool], count_correct: CountFn, n: int
) -> list[StepLabels]:
  """Every prefix but the last rolled out n times (one `count_correct` call for all)."""
  requests = [(i, k) for i, s in enumerate(solutions) for k in range(len(s.steps) - 1)]
  counts = dict(zip(requests, np.asarray(count_correct(requests)).tolist())) if requests else {}
  out = []
  for i, s in enumerate(solutions):
    c = [counts[(i, k)] for k in range(len(s.steps) - 1)]
    last = int(final_correct[i])
    out.append(
      StepLabels(
        labels=[int(x > 0) for x in c] + [last],
        soft_labels=[x / n for x in c] + [float(last)],
        rollouts=[n] * len(c) + [0],
      )
    )
  return out


def label_binary_search(
  solutions: Sequence[Solution], final_correct: Sequence[bool], count_correct: CountFn, n: int
) -> list[StepLabels]:
  """OmegaPRM's bisection for the first step whose prefix no rollout completes correctly.

  Each round probes the midpoint of every unresolved solution's interval in one
  `count_correct` call; at most ceil(log2 K) rounds.
  """
  # For a wrong solution the first zero lies in [lo, hi]; h(hi) = 0 is known.
  lo = {i: 0 for i, ok in enumerate(final_correct) if not ok}
  hi = {i: len(solutions[i].steps) - 1 for i in lo}
  probed: dict[Request, int] = {}
  while open_ := [i for i in lo if lo[i] < hi[i]]:
    requests = [(i, (lo[i] + hi[i]) // 2) for i in open_]
    for (i, mid), c in zip(requests, np.asarray(count_correct(requests)).tolist()):
      probed[(i, mid)] = c
      if c > 0:
        lo[i] = mid + 1
      else:
        hi[i] = mid
  out = []
  for i, s in enumerate(solutions):
    k_last = len(s.steps) - 1
    first_zero = hi.get(i, len(s.steps))
    soft = [probed[(i, k)] / n if (i, k) in probed else None for k in range(k_last)]
    out.append(
      StepLabels(
        labels=[int(k < first_zero) for k in range(len(s.steps))],
        soft_labels=[*soft, float(final_correct[i])],
        rollouts=[n if (i, k) in probed else 0 for k in range(k_last)] + [0],
      )
    )
  return out


PLANNERS = {"full": label_full, "binary_search": label_binary_search}


# ----------------------------------------------------------------------------- real rollouts


class RolloutCounter:
  """`count_correct` over the real sampler and verifier pool.

  Args:
    sampler: a `Sampler` over the policy (its max_prompt_len bounds prompt + prefix).
    policy_state: the policy's parameters.
    tokenizer: the policy's tokenizer.
    pool: a `VerifierPool`.
    verifier: the registered verifier name.
    solutions: the solutions the requests index.
    cfg: the label config (N, step format, prefixes per call).
    sampling: the rollouts' `SamplingParams`.
    rng: a PRNG key; each call folds in a counter.
    mesh: the device mesh, or None.

  Attributes:
    calls: sampler calls made. tokens: rollout tokens generated.
    last_outcomes: per request of the latest call, each rollout's verdict (N bools, in
      sampling order): the first n of them are an n-rollout labelling of the same prefix.
  """

  def __init__(
    self,
    sampler,
    policy_state,
    tokenizer,
    pool,
    verifier: str,
    solutions: Sequence[Solution],
    cfg: LabelConfig,
    *,
    sampling,
    rng,
    mesh=None,
  ):
    self.sampler, self.policy_state, self.tokenizer = sampler, policy_state, tokenizer
    self.pool, self.verifier, self.solutions, self.cfg = pool, verifier, solutions, cfg
    self.sampling, self.rng, self.mesh = sampling, rng, mesh
    self.fmt = steps_lib.step_format(cfg.step_format, cfg.delimiter or None)
    self.calls = self.tokens = 0
    self.last_outcomes: list[list[bool]] = []

  def prefix(self, request: Request) -> str:
    i, k = request
    return steps_lib.prefix_text(self.solutions[i].steps, k, self.fmt)

  def rows(self, requests: Sequence[Request]) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded prompt + prefix tokens, one row per request [r, max_prompt_len]."""
    width = self.sampler.max_prompt_len
    tokens = np.full((len(requests), width), self.tokenizer.pad_id, np.int32)
    mask = np.zeros((len(requests), width), bool)
    for row, (i, k) in enumerate(requests):
      ids = self.tokenizer.encode(self.solutions[i].prompt, add_bos=True)
      ids += self.tokenizer.encode(self.prefix((i, k)))
      if len(ids) > width:
        raise ValueError(
          f"Solution {i}'s prompt and steps 1..{k + 1} take {len(ids)} tokens, more than the "
          f"sampler's max_prompt_len={width}; raise it (config.task.max_prompt_len) or "
          "label shorter solutions."
        )
      tokens[row, width - len(ids) :] = ids
      mask[row, width - len(ids) :] = True
    return tokens, mask

  def _sample(self, requests: Sequence[Request]) -> list[str]:
    """The N continuations of each request's prefix (chunk padded to a fixed size)."""
    n, size = self.cfg.num_rollouts, self.cfg.prefixes_per_call
    padded = [*requests, *[requests[-1]] * (size - len(requests))]
    tokens_bp, mask_bp = self.rows(padded)
    prompt_gp = np.repeat(tokens_bp, n, axis=0)
    mask_gp = np.repeat(mask_bp, n, axis=0)
    if self.mesh is not None:
      prompt_gp, mask_gp = distributed.to_global((prompt_gp, mask_gp), self.mesh)
    rng = jax.random.fold_in(self.rng, self.calls)
    rollout = self.sampler.generate(
      self.policy_state, prompt_gp, mask_gp, rng, self.sampling, prompt_repeats=n
    )
    self.calls += 1
    tokens_gt, mask_gt = np.asarray(rollout.tokens_gt), np.asarray(rollout.mask_gt)
    self.tokens += int(mask_gt[: len(requests) * n].sum())
    return self.tokenizer.decode_batch(tokens_gt, mask_gt)[: len(requests) * n]

  def _submit(self, requests: Sequence[Request], texts: Sequence[str]) -> list[int]:
    n = self.cfg.num_rollouts
    tickets = []
    for j, text in enumerate(texts):
      i, k = requests[j // n]
      s = self.solutions[i]
      completion = self.prefix((i, k)) + text
      tickets.append(self.pool.submit(self.verifier, completion, s.reference, s.fields))
    return tickets

  def __call__(self, requests: Sequence[Request]) -> np.ndarray:
    """Correct rollouts (of N) per request; the pool checks chunk c while chunk c + 1 samples."""
    n, size = self.cfg.num_rollouts, self.cfg.prefixes_per_call
    chunks = [list(requests[a : a + size]) for a in range(0, len(requests), size)]
    outcomes: list[list[bool]] = []
    pending: tuple[list[Request], list[int]] | None = None
    for chunk in [*chunks, None]:
      texts = self._sample(chunk) if chunk is not None else None  # Device, while the pool ...
      if pending is not None:  # ... verifies the previous chunk.
        done, tickets = pending
        ok = [v.status == "ok" for v in self.pool.results(tickets)]
        outcomes += [ok[j * n : (j + 1) * n] for j in range(len(done))]
      pending = (chunk, self._submit(chunk, texts)) if chunk is not None else None
    self.last_outcomes = outcomes
    return np.asarray([sum(o) for o in outcomes], np.int64)


def final_correct(pool, verifier: str, solutions: Sequence[Solution], fmt) -> list[bool]:
  """Whether each whole solution (its steps joined) is correct, through the pool."""
  tickets = [pool.submit(verifier, fmt.join(s.steps), s.reference, s.fields) for s in solutions]
  return [v.status == "ok" for v in pool.results(tickets)]


def label_solutions(
  solutions: Sequence[Solution], counter: RolloutCounter, cfg: LabelConfig
) -> list[StepLabels]:
  """Monte-Carlo labels of `solutions` with the real sampler and pool (`counter`)."""
  finals = final_correct(counter.pool, counter.verifier, solutions, counter.fmt)
  return PLANNERS[cfg.mode](solutions, finals, counter, cfg.num_rollouts)


def label_nested(
  solutions: Sequence[Solution], counter: RolloutCounter, ns: Sequence[int]
) -> dict[int, list[StepLabels]]:
  """Full-mode labels at every N in `ns` from one run of max(ns) rollouts per prefix.

  The labels at n use the first n rollouts of each prefix: the labelling an n-rollout run
  would have made, so label quality versus N costs one labelling, not len(ns).

  Raises:
    ValueError: `counter` samples a different number of rollouts than max(ns).
  """
  top = max(ns)
  if counter.cfg.num_rollouts != top:
    raise ValueError(f"The counter samples {counter.cfg.num_rollouts} rollouts; ns needs {top}.")
  finals = final_correct(counter.pool, counter.verifier, solutions, counter.fmt)
  requests = [(i, k) for i, s in enumerate(solutions) for k in range(len(s.steps) - 1)]
  counter(requests)  # One run; `last_outcomes` keeps every rollout's verdict.
  by_request = dict(zip(requests, counter.last_outcomes, strict=True))

  def first(n: int) -> CountFn:
    return lambda reqs: np.asarray([sum(by_request[r][:n]) for r in reqs], np.int64)

  return {n: label_full(solutions, finals, first(n), n) for n in ns}


# ----------------------------------------------------------------------------- files


def read_solutions(path: str) -> tuple[list[dict], list[Solution]]:
  """The records of a JSONL file of `{"prompt", "steps": [...], "reference"}` lines (further
  keys: verifier fields) and their solutions; a bad line is one sentence naming it."""
  records = jsonl.read_jsonl(path)
  solutions = []
  for r in records:
    n = r["_line"]
    steps = r.get("steps")
    if not isinstance(r.get("prompt"), str):
      raise ValueError(f'{path} line {n} needs "prompt": the problem text as a string.')
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
      raise ValueError(f'{path} line {n} needs "steps": a list of strings.')
    if not steps:
      raise ValueError(f"{path} line {n} has no steps; a solution needs at least one step.")
    empty = [j for j, s in enumerate(steps) if not s.strip()]
    if empty:
      raise ValueError(f"{path} line {n} has an empty step (index {empty[0]}); remove it.")
    if "reference" not in r:
      raise ValueError(f'{path} line {n} needs "reference": the answer the verifier checks.')
    fields = {k: v for k, v in r.items() if k not in ("prompt", "steps", "reference", "_line")}
    solutions.append(Solution(r["prompt"], tuple(steps), r["reference"], fields))
  return records, solutions


def add_labels(records: list[dict], labelled: Sequence[StepLabels]) -> None:
  """Adds `labels`, `soft_labels` and `rollouts` to each record (the label_cli output)."""
  for record, out in zip(records, labelled, strict=True):
    record.update(labels=out.labels, soft_labels=out.soft_labels, rollouts=out.rollouts)
