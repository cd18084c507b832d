r"""Reward-model overoptimisation (Gao et al. 2022), reproduced on a laptop CPU.

  python -m jaxrl_verify.train --config=configs/overopt_orm.py:plain --workdir=DIR
  python -m jaxrl_verify.train --config=configs/overopt_orm.py:kl --workdir=DIR2
  python -m jaxrl_verify.plot --overoptimisation DIR DIR2  # proxy, gold vs KL and steps

The quickstart's task and warm start (arithmetic word problems; a tiny policy that computes
but often boxes a wrong number), then, before step 0, an outcome reward model trained on a
*limited* set of gold labels: 1,024 train problems x 8 samples of the initial policy, each
verified (`reward.bootstrap`, into DIR/reward_model, its held-out accuracy in
DIR/reward_model/metrics.jsonl). GRPO then trains on the ORM's score alone. Every step
logs `reward/proxy` (the ORM), `reward/gold` (the verifier on the same completions, never
trained on past the bootstrap labels), `reward/hack_gap` and `kl_from_init`; every
`eval.every` steps the held-out greedy completions give `eval/proxy`,
`eval/gold_accuracy` and `eval/hack_gap`.

Variants (`:VARIANT`, or `:VARIANT,runlocal` for a seconds-long smoke run):
- `plain`: the ORM alone, no KL term.
- `kl`: the same with a KL penalty to the initial policy in the loss (k3, 0.1; the
  classic defence, for comparison).
- `adversarial`: every step the verifier labels the 8% of the batch the ORM scores
  highest (`reward.audit`), and the ORM takes two AdamW steps on those labels (hard
  negatives first) mixed with replayed ones (`audited_rewards`): external feedback
  entering the loop at a measured rate (`verify/audited_frac`).
- `independent`: a second ORM trained before step 0 with the same recipe on 960 *other*
  train problems, another seed and a fresh, smaller backbone (`tiny`), frozen; the policy
  trains on the minimum of the two scores (a pessimistic ensemble, `reward.ensemble`) and
  `reward/judge` logs the independent one alone. Not measured yet.

Every held-out eval also red-teams the reward that trains (`eval/red_team/*`: fixed attacks
on 64 held-out problems, a wrong boxed answer after the honest work, the right answer after
another problem's work, repeated steps, a truncated solution and the "Let's solve this step
by step." opener, each against the honest solution; `process.red_team`). Not measured yet
on the full runs.

Measured on the 2-core development CPU (2026-12-03; training figures are EMA-smoothed
(0.9) per-step means over 128 samples, eval is greedy on 200 held-out problems):

- The ORM (1,500 steps, 334 s): held-out outcome accuracy 0.977 (base rate 0.75; the
  initial policy's samples are 24.8% correct).
- `plain` (566 s with the ORM's training): gold peaks at 0.400 at step 9 (eval 0.320 at
  step 25) and falls to 0.168 (eval 0.205; minimum 0.115 at step 125) while the proxy
  rises 0.243 -> 0.882 (eval 0.894): overoptimisation, a 23-point fall from the peak.
  Final hack gap 0.714 (eval 0.689), kl_from_init 32.9 nats; pass@4 0.66 -> 0.205.
- `kl` (205 s; the same ORM): gold rises to 0.481 at the end (eval 0.260 -> 0.450, peak
  0.455), proxy 0.714, hack gap 0.234 (eval 0.286), kl_from_init 5.2; pass@4 0.66 -> 0.525.
  Here the KL term is the defence that works.
- `adversarial` (487 s; the same ORM; 11 of 128 completions audited per step, 8.6%):
  final hack gap 0.147 (eval 0.164), under a third of plain's (0.21x), but the gold
  reward does not hold: it peaks at 0.379 (step 11) and ends at 0.205 (eval 0.135),
  below plain's peak (0.400): the audited ORM stops being exploited (proxy 0.352) without
  becoming a signal the policy can climb.

The `kl` and `adversarial` runs reused a copy of the `plain` run's DIR/reward_model (the
bootstrap is the same config and seed in every variant, so it would be rebuilt the same).
Figure: `benchmarks/results/overopt_orm.png` (`python -m jaxrl_verify.plot
--overoptimisation` over the three runs).
"""

import ml_collections as mlc

from jaxrl_verify import config_lib

VARIANTS = ("plain", "kl", "adversarial", "independent")


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  parts = [p for p in (arg or "plain").split(",") if p]
  variant = next((p for p in parts if p != "runlocal"), "plain")
  if variant not in VARIANTS or len(parts) > 1 + ("runlocal" in parts):
    raise ValueError(
      f"Unknown config argument {arg!r}; use one of {VARIANTS}, optionally with ',runlocal'."
    )
  # The quickstart's task, tokenizer, policy, warm start, rollouts and GRPO.
  c = config_lib.sibling_config(
    __file__, "quickstart.py", "runlocal" if "runlocal" in parts else None
  )
  c.total_steps = 300

  # The learned reward: an ORM on the initial policy's verified samples; the verifier is
  # only the gold check from then on.
  b = c.reward.bootstrap
  b.problems = 1024  # x 8 samples: 7,167 train and 1,024 held-out labelled completions.
  b.rm.total_steps = 1500
  b.rm.rm.max_len = 96  # bos + prompt (<= 48) + completion (<= 36) + step separators.
  b.rm.rm.max_steps = 8
  b.rm.optim.learning_rate = 1e-3
  b.rm.optim.batch_size = 64
  b.rm.eval.every = 250
  c.reward.rm_aggregate = "last"
  c.reward.rm_weight = 1.0
  c.reward.verifier_weight = 0.0

  if variant == "kl":
    c.algo.kl_coef = 0.1
    c.algo.kl_placement = "loss"  # GRPO's own placement (outcome rewards only).
    c.algo.kl_estimator = "k3"
  elif variant == "adversarial":  # 8% of each batch audited, the ORM updated on them.
    c.reward.audit.frac = 0.08
    c.reward.audit.select = "confident"
    c.reward.audit.updates_per_step = 2
    c.reward.audit.batch_size = 32
    c.reward.audit.learning_rate = 1e-4
  elif variant == "independent":  # A second ORM, never optimised alone: min of the two.
    ind = c.reward.independent
    ind.update(b.to_dict())  # The same labelling and training recipe ...
    ind.problems = 960  # Of the 976 train problems the first ORM's 1,024 leave.
    ind.seed_offset = 2  # ... another seed and sample order, problems disjoint from b's,
    ind.init_from_policy = False  # ... and a fresh, smaller backbone (`tiny`).
    ind.rm.model.preset = "tiny"
    c.reward.ensemble.combine = "min"

  c.eval.every = 25  # 200 held-out problems, greedy and 4 samples (the quickstart's).
  c.checkpoint_every = 25

  if "runlocal" in parts:  # The quickstart's runlocal sizes, and a seconds-long bootstrap.
    c.total_steps = 4
    b.problems = 16
    b.rm.total_steps = 4
    b.rm.optim.batch_size = 8
    b.rm.eval.every = 2
    b.rm.eval.batch_size = 8
    if variant == "independent":
      ind.update({k: b[k] for k in ("problems", "rm")})
      ind.rm.model.preset = "tiny"
    c.eval.every = 2
    c.checkpoint_every = 2
  c.lock()
  return c
