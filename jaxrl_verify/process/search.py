r"""Step-level beam search guided by a process reward model.

Each round, every live beam of every problem is expanded by `expand` candidate next
steps, sampled together in one sampler call (each beam's prefix prefilled once for its
candidates, `prompt_repeats`) and cut at the end of the step: the sampler stops at any
token that holds a newline (the `lines` step format). The PRM scores every candidate at
its step end; a beam's score is the minimum of its step scores (Math-Shepherd's
solution score), and each problem keeps its `width` best beams among the live and
finished ones. A beam finishes with a step that holds `\boxed{` (its answer), at
`max_steps`, or when none of its candidates is left to extend it (all empty, or past the
PRM's `rm_max_len` / `rm_max_steps`). The answer is the best finished beam.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from jaxrl_verify.process import rm
from jaxrl_verify.process import steps as steps_lib

FMT = steps_lib.step_format("lines")


@dataclasses.dataclass(frozen=True)
class Beam:
  """A partial solution. Attributes: steps, score (min step probability), done."""

  steps: tuple[str, ...] = ()
  score: float = 1.0
  done: bool = False


def newline_ids(tokenizer) -> list[int]:
  """The ids whose piece holds a newline: where a `lines` step ends."""
  pieces = [(i, tokenizer.id_to_piece(i)) for i in range(tokenizer.vocab_size)]
  return [i for i, p in pieces if p is not None and ("\n" in p or p == "<0x0A>")]


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Attributes: width (beams kept per problem), expand (candidates per beam and round),
  max_steps (rounds), max_prompt_len (prompt + prefix tokens), rm_max_len, rm_max_steps
  (the PRM's packing limits)."""

  width: int = 4
  expand: int = 4
  max_steps: int = 10
  max_prompt_len: int = 192
  rm_max_len: int = 256
  rm_max_steps: int = 16


def _fits(tokenizer, prompt: str, steps: tuple[str, ...], cfg: SearchConfig) -> bool:
  return len(steps) <= cfg.rm_max_steps and (
    rm.packed_length(tokenizer, prompt, steps, FMT) <= cfg.rm_max_len
  )


def beam_search(
  prompts: Sequence[str],
  *,
  sampler,
  policy_state,
  tokenizer,
  score_fn,
  rm_params,
  cfg: SearchConfig,
  sampling,
  rng,
) -> tuple[list[Beam], int]:
  """The best finished beam per prompt, and the rollout tokens the search generated.

  `sampler` must stop at `newline_ids(tokenizer)` (its `stop_ids`) and accept
  `max_prompt_len` >= cfg.max_prompt_len; `score_fn(rm_params, RMBatch)` is
  `rm.make_score_fn(graphdef)` jitted.
  """
  beams = [[Beam()] for _ in prompts]
  tokens_used = 0
  for round_ in range(cfg.max_steps):
    live = [(p, b) for p, bs in enumerate(beams) for b in bs if not b.done]
    if not live:
      break
    # One row per (live beam x candidate); a fixed number of beams per call, so one shape.
    slots = len(prompts) * cfg.width
    padded = [*live, *[live[-1]] * (slots - len(live))]
    width = cfg.max_prompt_len
    tokens_bp = np.full((slots, width), tokenizer.pad_id, np.int32)
    mask_bp = np.zeros((slots, width), bool)
    for row, (p, beam) in enumerate(padded):
      ids = tokenizer.encode(prompts[p], add_bos=True)
      if beam.steps:
        ids += tokenizer.encode(FMT.join([*beam.steps, ""]))
      ids = ids[-width:]  # A prefix past the context keeps its end (rare at these sizes).
      tokens_bp[row, width - len(ids) :], mask_bp[row, width - len(ids) :] = ids, True
    prompt_gp = np.repeat(tokens_bp, cfg.expand, axis=0)
    mask_gp = np.repeat(mask_bp, cfg.expand, axis=0)
    out = sampler.generate(
      policy_state,
      prompt_gp,
      mask_gp,
      jax.random.fold_in(rng, round_),
      sampling,
      prompt_repeats=cfg.expand,
    )
    mask_gt = np.asarray(out.mask_gt)
    n_real = len(live) * cfg.expand
    tokens_used += int(mask_gt[:n_real].sum())
    texts = tokenizer.decode_batch(np.asarray(out.tokens_gt), mask_gt)[:n_real]
    candidates = []  # (problem, beam, step) of each non-empty candidate the PRM can read
    for j, text in enumerate(texts):
      p, beam = live[j // cfg.expand]
      step = text.strip().split("\n")[0].strip()
      if step and _fits(tokenizer, prompts[p], (*beam.steps, step), cfg):
        candidates.append((p, beam, step))
    pool = [[b for b in bs if b.done] for bs in beams]
    # A live beam with no candidate (all empty, or past the PRM's context) ends as it is.
    extended = {id(b) for _, b, _ in candidates}
    for p, beam in live:
      if id(beam) not in extended:
        pool[p].append(dataclasses.replace(beam, done=True))
    if not candidates:
      beams = pool
      break
    # A fixed number of rows (copies of the last), so the PRM compiles once.
    rows = [*candidates, *[candidates[-1]] * (slots * cfg.expand - len(candidates))]
    batch = rm.pack(
      tokenizer,
      [prompts[p] for p, _, _ in rows],
      [(*b.steps, s) for _, b, s in rows],
      None,
      FMT,
      max_len=cfg.rm_max_len,
      max_steps=cfg.rm_max_steps,
    )
    probs = np.asarray(score_fn(rm_params, batch))
    for k, (p, beam, step) in enumerate(candidates):
      steps = (*beam.steps, step)
      done = "\\boxed{" in step or len(steps) >= cfg.max_steps
      pool[p].append(Beam(steps, min(beam.score, float(probs[k, len(steps) - 1])), done))
    beams = [sorted(bs, key=lambda b: -b.score)[: cfg.width] or old for bs, old in zip(pool, beams)]
  best = []
  for bs in beams:
    finished = [b for b in bs if b.done] or bs
    best.append(max(finished, key=lambda b: b.score))
  return best, tokens_used
