"""Held-out evaluation: greedy accuracy, pass@k and maj@k through the verifier pool.

Greedy accuracy is the fraction of problems whose greedy completion the verifier
accepts. For pass@k and maj@k each problem gets k samples at `temperature`:
pass@k counts a problem solved if any sample is accepted; maj@k takes the most
common final answer among the samples that gave one (ties broken by first
occurrence) and counts the problem solved if that answer was accepted.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterable

import jax
import numpy as np

from jaxrl_verify import distributed
from jaxrl_verify.sampler import SamplingParams
from jaxrl_verify.types import PromptBatch

# Verdict extras averaged over the greedy completions, by verifier: name -> metric.
EVAL_EXTRAS = {
  "simulator": {
    "prediction_reward": "eval/prediction_reward",
    "runs": "eval/runs_frac",
    "length_cost": "eval/length_cost",
  },
}


def answer_key(verifier: str, completion: str) -> str | None:
  """The final answer of a completion in a canonical form, for majority voting."""
  if verifier == "math":
    from jaxrl_verify.verifiers.math import canonical_answer

    return canonical_answer(completion)
  boxed = re.findall(r"\\boxed\{([^{}]*)\}", completion)
  if boxed:
    return boxed[-1].replace(" ", "")
  lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
  return lines[-1] if lines else None


def _pad_batch(batch: PromptBatch, size: int) -> tuple[PromptBatch, int]:
  """Repeats the last row so the batch has `size` rows (the mesh needs full batches)."""
  b = batch.tokens_bp.shape[0]
  if b == size:
    return batch, b
  if b == 0:  # Multi-host: this process got no rows of a short last batch; feed dummies.
    mask = np.zeros((size, batch.mask_bp.shape[1]), bool)
    mask[:, -1] = True
    return PromptBatch(
      np.zeros(mask.shape, np.int32), mask, [""] * size, [""] * size, [{}] * size, [""] * size
    ), 0
  return _rows(batch, list(range(b)) + [b - 1] * (size - b)), b


def _sample_and_verify(
  sampler,
  policy_state,
  batch: PromptBatch,
  repeats: int,
  params,
  rng,
  *,
  tokenizer,
  pool,
  verifier,
  mesh,
):
  """(completions, verdicts) for each prompt repeated `repeats` times, prompt-major."""
  tokens = np.repeat(batch.tokens_bp, repeats, axis=0)
  mask = np.repeat(batch.mask_bp, repeats, axis=0)
  tokens, mask = distributed.to_global((tokens, mask), mesh)
  rollout = sampler.generate(policy_state, tokens, mask, rng, params, prompt_repeats=repeats)
  tokens_gt, mask_gt = distributed.to_local((rollout.tokens_gt, rollout.mask_gt), mesh)
  texts = tokenizer.decode_batch(tokens_gt, mask_gt)
  tickets = [
    pool.submit(verifier, text, batch.references[i // repeats], batch.fields[i // repeats])
    for i, text in enumerate(texts)
  ]
  return texts, pool.results(tickets), mask_gt.sum(axis=1)


def evaluate(
  sampler,
  policy_state,
  batches: Iterable[PromptBatch],
  *,
  tokenizer,
  pool,
  verifier: str,
  batch_size: int,
  k: int,
  temperature: float,
  rng,
  mesh,
  num_examples: int,
  proxy: Callable[[PromptBatch, list[str]], np.ndarray] | None = None,
) -> dict[str, float]:
  """Evaluates `policy_state` on up to `num_examples` problems from `batches`.

  Args:
    proxy: when a learned reward trains the policy, its score of each greedy completion
      (float [b], NaN where it cannot score one): logged beside the gold check.

  Returns:
    Flat metrics: `eval/accuracy` (greedy), `eval/pass@k`, `eval/maj@k`,
    `eval/invalid_frac` (greedy completions with no single well-formed answer),
    `eval/response_length`, `eval/num_examples` and `eval/reward` (the mean reward of the
    greedy completions), the verifier's `EVAL_EXTRAS` (e.g. `eval/prediction_reward`); with
    `proxy`, also `eval/proxy` (the mean learned reward of the greedy completions),
    `eval/gold_accuracy` (the verifier's verdict of the same completions: `eval/accuracy`)
    and `eval/hack_gap` (their difference).
  """
  greedy = SamplingParams(temperature=0.0)
  sampled = SamplingParams(temperature=temperature)
  correct, passed, majority, invalid, lengths, n = 0, 0, 0, 0, [], 0
  proxy_sum, proxy_n = 0.0, 0
  extras = EVAL_EXTRAS.get(verifier, {})
  extras_sum = np.zeros(len(extras) + 1)  # the extras, then the reward
  for batch in batches:
    if n >= num_examples:  # n counts all processes' examples: every process stops together.
      break
    batch, real = _pad_batch(batch, batch_size)
    # This process keeps the rows of the first `num_examples` (global order: process-major).
    real_p = distributed.gather_rows(np.asarray([real]))
    keep_p = np.clip(num_examples - n - (np.cumsum(real_p) - real_p), 0, real_p)
    real = int(keep_p[jax.process_index()])
    rng, greedy_rng, sample_rng = jax.random.split(rng, 3)
    texts, verdicts, length_b = _sample_and_verify(
      sampler,
      policy_state,
      batch,
      1,
      greedy,
      greedy_rng,
      tokenizer=tokenizer,
      pool=pool,
      verifier=verifier,
      mesh=mesh,
    )
    correct += sum(v.status == "ok" for v in verdicts[:real])
    for v in verdicts[:real]:
      got = v.extras or {}
      extras_sum += [float(got.get(key, 0.0)) for key in extras] + [v.reward]
    if proxy is not None and real:
      scores_b = np.asarray(proxy(batch, texts), np.float64)[:real]
      proxy_sum += float(np.nansum(scores_b))
      proxy_n += int(np.isfinite(scores_b).sum())
    invalid += sum(v.status == "invalid" for v in verdicts[:real])
    lengths.extend(length_b[:real].tolist())
    if k > 1:
      # k samples per prompt, in chunks of `batch_size` rows to keep the batch shape fixed.
      # Every process runs as many chunks as the busiest one (a short one samples dummies).
      for start in range(0, int(keep_p.max()), max(batch_size // k, 1)):
        rows = list(range(start, min(start + max(batch_size // k, 1), real)))
        sub, _ = _pad_batch(_rows(batch, rows or [0]), max(batch_size // k, 1))
        sample_rng, chunk_rng = jax.random.split(sample_rng)
        texts, verdicts, _ = _sample_and_verify(
          sampler,
          policy_state,
          sub,
          k,
          sampled,
          chunk_rng,
          tokenizer=tokenizer,
          pool=pool,
          verifier=verifier,
          mesh=mesh,
        )
        for j in range(len(rows)):
          group = list(zip(texts[j * k : (j + 1) * k], verdicts[j * k : (j + 1) * k]))
          passed += any(v.status == "ok" for _, v in group)
          majority += _majority_correct(verifier, group)
    n += int(keep_p.sum())
  totals = [correct, invalid, passed, majority, sum(lengths), proxy_sum, proxy_n]
  summed = distributed.all_sum(np.array([*totals, *extras_sum], np.float64)).tolist()
  correct, invalid, passed, majority, length_sum, proxy_sum, proxy_n = summed[: len(totals)]
  extras_sum = summed[len(totals) :]
  metrics = {
    "eval/reward": extras_sum[-1] / max(n, 1),
    **{name: total / max(n, 1) for name, total in zip(extras.values(), extras_sum)},
    "eval/accuracy": correct / max(n, 1),
    "eval/invalid_frac": invalid / max(n, 1),
    "eval/response_length": length_sum / max(n, 1),
    "eval/num_examples": float(n),
  }
  if k > 1:
    metrics[f"eval/pass@{k}"] = passed / max(n, 1)
    metrics[f"eval/maj@{k}"] = majority / max(n, 1)
  if proxy is not None:
    metrics["eval/proxy"] = proxy_sum / max(proxy_n, 1)
    metrics["eval/gold_accuracy"] = metrics["eval/accuracy"]
    metrics["eval/hack_gap"] = metrics["eval/proxy"] - metrics["eval/gold_accuracy"]
  return metrics


def _rows(batch: PromptBatch, rows: list[int]) -> PromptBatch:
  return PromptBatch(
    tokens_bp=batch.tokens_bp[rows],
    mask_bp=batch.mask_bp[rows],
    prompts=[batch.prompts[i] for i in rows],
    references=[batch.references[i] for i in rows],
    fields=[batch.fields[i] for i in rows],
    ids=[batch.ids[i] for i in rows],
  )


def _majority_correct(verifier: str, group) -> bool:
  votes: collections.Counter[str] = collections.Counter()
  ok_by_key: dict[str, bool] = {}
  for text, verdict in group:
    key = answer_key(verifier, text)
    if key is None or verdict.status in ("invalid", "timeout", "error"):
      continue
    votes[key] += 1
    ok_by_key[key] = ok_by_key.get(key, False) or verdict.status == "ok"
  if not votes:
    return False
  top = votes.most_common(1)[0][0]
  return ok_by_key[top]
