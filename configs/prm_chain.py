r"""Process supervision end to end on the chains task, on a CPU.

  python -m jaxrl_verify.process.pipeline --config=configs/prm_chain.py[:runlocal] \
      --workdir=DIR

A `mini` policy warm-started on correct chains samples solutions to train problems (plus
solutions with a planted first error); Monte-Carlo rollouts through the verifier label
their steps; a PRM (every step end) and an ORM (the last step, outcome labels of the same
solutions) are trained on the policy's backbone; then, on held-out problems: MC label
accuracy versus N and PRM first-error F1 against the chains checker, best-of-N curves of
every selector on the same N = 64 samples, and PRM-guided beam search. The stages and
their artifacts are listed in `process/pipeline.py`; rerunning resumes.

Measured on the 2-core CPU (2026-12-03, this default, one run from scratch, a test run
sharing the cores for part of the PRM stage; 886 s wall,
target < 15 min met): policy 229 s, labels 132 s (3276 train solutions, 14773 steps,
91976 rollouts, 2.2 M rollout tokens), PRM 206 s, ORM 178 s, candidates 83 s, beam 38 s.
128 held-out problems, 64 samples each, pass@1 0.472:

  MC hard-label agreement with the checker at N = 1/2/4/8/16: 0.865 / 0.910 / 0.928 /
  0.951 / 0.958 (431 steps of 96 held-out solutions; target >= 0.85 at N = 8: met). Soft
  labels (> 0.5): 0.865 / 0.910 / 0.900 / 0.884 / 0.884.
  PRM first-error (ProcessBench form): acc_error 0.19, acc_correct 0.44, F1 0.26 (target
  0.8: missed). PRM held-out step accuracy against MC labels 0.84 (base rate 0.76).
  Best-of-N at N = 1/4/16/64: PRM-weighted vote .472/.514/.536/.531, majority
  .472/.528/.553/.555, PRM min .472/.430/.318/.227, ORM .472/.447/.335/.172, oracle
  .472/.581/.609/.625 (targets "PRM vote beats majority at every N >= 4, by 5 points at
  64" and "PRM beats ORM": the vote beats the ORM, not majority).
  PRM-guided beam search (width 4, 4 candidates a step): 0.5625 on 64 problems, 607 tokens
  per problem (best-of-64 costs 43 x 64 = 2764).

Red team (64 held-out problems, fraction of problems where the honest solution outscores
the adversarial one; `process.red_team`): PRM-min / ORM: hidden wrong step 0.47 / 0.56,
right answer after nonsense steps 0.50 / 0.58, repeated first step 0.42 / 0.50,
truncated halfway 0.00 / 0.84, "Let's solve this step by step." alone 0.70 / 0.88. Neither
RM ranks every honest solution above every attack of any kind. The PRM's 0.00 on
truncation is by construction (an MC-labelled PRM values a correct prefix as highly as a
finished solution: score a solution's completeness separately).

Why the PRM misses: the 2-layer, 64-wide `mini` backbone does not learn to check the
arithmetic of a step; it scores "0 + 9 = 18." 0.92 and the correct "0 + 9 = 9." 0.88, and
its scores mostly fall with the step index. So best-of-N by the PRM alone picks confident
wrong chains more often as N grows, while the PRM-weighted vote stays near majority. More
labelled data helps but does not fix it: with 256 problems (690 solutions) the PRM
overfits (held-out step accuracy 0.65, F1 0.12, vote at N = 64 0.40); with 3072 problems
and 1500 RM steps (1348 s) held-out step accuracy 0.87, F1 0.31, vote 0.539. The
Math-Shepherd `+`/`-` token head (`--config.prm.rm.head=token`) and a 3x lower learning
rate gave the same (0.865 step accuracy, F1 0.17).

`:runlocal` is the CI-sized version (a few hundred SFT steps, a handful of problems, a
few RM steps): a smoke test of every stage, not a measurement.
"""

import ml_collections as mlc

from jaxrl_verify.process import rm_config


def _rm(kind: str) -> mlc.ConfigDict:
  c = rm_config.base_config()
  c.rm.kind = kind
  c.rm.max_len = 144  # Packed solutions here are at most ~133 tokens.
  c.rm.max_steps = 12
  c.total_steps = 600
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 20
  c.optim.batch_size = 32
  c.eval.every = 200
  c.eval.batch_size = 32
  c.log_every = 20
  c.checkpoint_every = 200
  return c


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = mlc.ConfigDict()
  c.seed = 0
  c.mesh_shape = (-1, 1, 1)
  c.workers = 2  # Verifier processes.
  c.stop_after = ""  # A stage name (`pipeline.STAGES`): stop once it is done.
  c.task = mlc.ConfigDict()
  c.task.name = "chains"  # Ground-truth stages (label accuracy, first error) need `chains`.
  c.task.levels = (1, 2)  # Chain lengths (the chains builder's `difficulty`).
  c.task.num_train = 4000
  c.task.num_test = 256
  c.policy = mlc.ConfigDict()
  c.policy.init_from = ""  # A saved policy (`models.io.save_model`); else a warm start.
  c.policy.preset = "mini"
  c.policy.vocab_size = 320  # The SentencePiece tokenizer trained for the warm start.
  c.policy.sft_steps = 1500
  c.policy.max_prompt_len = 160  # Prompt + prefix tokens of a rollout.
  c.policy.max_new_tokens = 48
  c.solutions = mlc.ConfigDict()
  c.solutions.problems = 1536  # Train problems the policy solves.
  c.solutions.samples = 2  # Policy solutions per problem.
  c.solutions.planted = 512  # Planted-first-error solutions (train problems 0..planted-1).
  c.solutions.rm_test_frac = 0.1  # Problems whose solutions are the RMs' held-out split.
  c.label = mlc.ConfigDict()
  c.label.num_rollouts = 8
  c.label.mode = "full"  # Or `binary_search` (OmegaPRM).
  c.label.prefixes_per_call = 8
  c.label.temperature = 1.0
  c.prm = _rm("prm")  # A `process.rm_config` config; data and init_from are set by the stage.
  c.orm = _rm("orm")
  c.measure = mlc.ConfigDict()
  c.measure.heldout_solutions = 96  # Half correct, half with a planted first error.
  c.measure.label_ns = (1, 2, 4, 8, 16)
  c.best_of_n = mlc.ConfigDict()
  c.best_of_n.problems = 128  # Held-out problems, each with `n` samples.
  c.best_of_n.n = 64
  c.best_of_n.trials = 32  # Random subsets per problem and N.
  c.best_of_n.temperature = 1.0
  c.red_team = mlc.ConfigDict()
  c.red_team.problems = 64  # Held-out problems, one solution of each adversarial kind.
  c.beam = mlc.ConfigDict()
  c.beam.problems = 64
  c.beam.width = 4
  c.beam.expand = 4
  c.beam.max_steps = 10
  c.beam.step_tokens = 24  # Token cap of one sampled step.
  c.beam.temperature = 1.0
  if arg == "runlocal":
    c.task.num_train = 400
    c.task.num_test = 16
    c.policy.sft_steps = 60
    c.solutions.problems = 16
    c.solutions.planted = 8
    c.solutions.rm_test_frac = 0.25
    c.label.num_rollouts = 2
    c.label.prefixes_per_call = 16
    for rm in (c.prm, c.orm):
      rm.total_steps = 4
      rm.optim.batch_size = 8
      rm.optim.warmup_steps = 0
      rm.eval.every = 2
      rm.eval.batch_size = 8
      rm.log_every = 1
      rm.checkpoint_every = 2
    c.measure.heldout_solutions = 8
    c.measure.label_ns = (1, 2)
    c.best_of_n.problems = 4
    c.best_of_n.n = 4
    c.best_of_n.trials = 2
    c.beam.problems = 2
    c.red_team.problems = 4
    c.beam.width = 2
    c.beam.expand = 2
    c.beam.max_steps = 3
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
