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

Not yet measured at this full size (2026-12-03). Measured earlier on the 2-core CPU
with the same pieces (levels 1-2): MC hard-label agreement with the checker 0.903 / 0.954 /
0.949 / 0.970 / 0.970 at N = 1 / 2 / 4 / 8 / 16 (96 held-out solutions, 1500-step warm
start); PRM first-error F1 0.04 (policy samples only), 0.28 (+256 planted, 300 PRM steps),
0.04 (+512 planted, 1500 PRM steps: it now over-flags correct solutions, acc_correct 0.02).

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
    c.beam.width = 2
    c.beam.expand = 2
    c.beam.max_steps = 3
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
