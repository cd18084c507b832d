r"""A process reward model trained on step-labelled files (Math-Shepherd, PRM800K, TRL, label_cli).

  python -m jaxrl_verify.process.train_rm --config=configs/prm_stepwise.py \
    --workdir=/tmp/prm --config.data.format=math_shepherd \
    --config.data.manual_dir=/data/math_shepherd --config.model.init_from=/data/policy

`data.manual_dir` holds train.jsonl and test.jsonl in `data.format`; `model.init_from` is
a policy directory (`models.io.save_model`, e.g. from `models.import_hf`) whose backbone
and tokenizer the PRM starts from (a fresh `mini` backbone otherwise, with
`tokenizer.path`). `--config.rm.kind=orm` trains the outcome RM on the last step's label.

`:runlocal` trains a fresh `mini` PRM for 6 steps on a small packaged stand-in in
Math-Shepherd's format (hand-made coin problems with `+`/`-` step tags) and a tokenizer
trained on it: a smoke test of the machinery, not a measurement.

Not measured at full size: it needs a public step-labelled dataset (Math-Shepherd,
PRM800K) that this project does not ship; `configs/prm_chain.py` holds the PRM figures
measured on the development CPU.
"""

import ml_collections as mlc

from jaxrl_verify.process import rm_config


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  c = rm_config.base_config()
  c.data.format = "math_shepherd"
  c.rm.max_len = 512
  if arg == "runlocal":
    c.total_steps = 6
    c.data.standin = True
    c.rm.max_len = 160
    c.rm.max_steps = 4
    c.optim.batch_size = 8
    c.optim.warmup_steps = 0
    c.optim.learning_rate = 3e-3
    c.eval.every = 3
    c.eval.batch_size = 8
    c.log_every = 1
    c.checkpoint_every = 2
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use ':runlocal' or nothing.")
  c.lock()
  return c
