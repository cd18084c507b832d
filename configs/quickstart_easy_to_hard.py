r"""Easy to hard: a warm start on correct easy problems, then RL on harder ones, on a CPU.

  python -m jaxrl_verify.train --config=configs/quickstart_easy_to_hard.py \
    --workdir=/tmp/jaxrl_easy_to_hard

The quickstart's tiny policy gets a short supervised warm start on *correct*
demonstrations (`sft.box_noise = 0`) of arithmetic levels 1-2 only (`sft.task_options`:
one- and two-step + and -, numbers up to 50), then GRPO with the sympy verifier trains
and is evaluated on level 3 (`task.options`): two steps with + - * and numbers up to 50,
so the same shape as level 2 plus a multiplication by 2..5 that no demonstration shows
(114 of the 200 held-out problems need one). Level 3 rather than 3-4: it is the nearest
step up; level 4 adds a third step and numbers to 99 (completions up to ~52 tokens
instead of ~34), slower on a CPU and with even fewer rewards for RL to start from.
`eval/accuracy` (greedy, 200 held-out level-3 problems) and pass@4 are logged before the
first and after the last RL step.

Measured on the 2-core development CPU (2026-12-02, shared with another job), this
config: RL does NOT improve held-out level-3 accuracy here.
  seed 0: eval/accuracy 0.055 -> 0.045 after 150 GRPO steps; pass@4 0.065 -> 0.07;
          2 min 50 s end to end.
  seed 1 (--config.seed=1): eval/accuracy 0.03 -> 0.03; pass@4 0.105 -> 0.055;
          5 min 17 s end to end (the CPU was busier).
Differences of this size are within the noise of 200 problems. The warm start is the
bottleneck: after 800 steps on 8000 demonstrations the 2-layer, 64-wide policy rarely
gets even the two-step + and - arithmetic right, so rollouts earn a reward ~3-6% of the
time (train reward about flat over the run) and GRPO has little to reinforce.
Also tried (seed 0): 600 warm-start steps on 2000 demonstrations with RL learning rate
1e-3: 0.025 -> 0.03, pass@4 0.07 -> 0.03, the policy degenerated (3 min 18 s);
1500 steps on 20000 demonstrations with RL learning rate 5e-4: 0.055 -> 0.03, pass@4
0.08 -> 0.055 (6 min 34 s); this warm start with a 128-wide policy: 0.04 before RL,
the warm start alone taking 3.5 min.
"""

import ml_collections as mlc

from jaxrl_verify import config_lib


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  if arg not in (None, "", "runlocal"):
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  # Same policy, tokenizer, rollouts, GRPO and eval as the quickstart.
  c = config_lib.sibling_config(__file__, "quickstart.py", arg)
  # RL and held-out eval on level 3; correct demonstrations of levels 1-2 only.
  c.task.options = mlc.ConfigDict({"size": "small", "difficulty": (3,)})
  c.sft.steps = 800
  c.sft.box_noise = 0.0
  c.sft.task_options = mlc.ConfigDict({"num_train": 8000, "difficulty": (1, 2)})
  c.rollout.max_new_tokens = 40
  c.optim.learning_rate = 3e-4
  if arg == "runlocal":
    c.task.options = mlc.ConfigDict({"size": "tiny", "difficulty": (3,)})
    c.sft.steps = 10
    c.sft.task_options = mlc.ConfigDict({"size": "tiny", "difficulty": (1, 2)})
    c.rollout.max_new_tokens = 16
  return c
