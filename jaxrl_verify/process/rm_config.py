"""The config of a reward-model run (`process.train_rm`): defaults and validation."""

from __future__ import annotations

import ml_collections as mlc

from jaxrl_verify import sharding as shd
from jaxrl_verify.process import rm as rm_lib
from jaxrl_verify.process import stepwise_data as sd

KINDS = ("prm", "orm")


def base_config() -> mlc.ConfigDict:
  """Defaults of a reward-model run (each field documented inline)."""
  c = mlc.ConfigDict()
  c.seed = 0
  c.total_steps = 1000  # Optimizer steps.
  c.mesh_shape = (-1, 1, 1)
  c.sharding_rules = tuple((k, v) for k, v in shd.DEFAULT_RULES)
  c.model = mlc.ConfigDict()
  c.model.preset = "mini"  # For a fresh backbone.
  c.model.init_from = ""  # A policy directory (`models.io.save_model`): its backbone and tokenizer.
  c.model.overrides = mlc.ConfigDict()
  c.tokenizer = mlc.ConfigDict()
  c.tokenizer.path = ""  # Default: init_from's, else one trained on the train split.
  c.tokenizer.vocab_size = 384  # When training one.
  c.data = mlc.ConfigDict()
  c.data.format = "labelled"  # A `stepwise_data.READERS` name.
  c.data.manual_dir = ""  # Holds train.jsonl and test.jsonl.
  c.data.data_dir = ""  # Prepared data; default WORKDIR/data.
  c.data.soft = False  # Soft (fraction-correct) labels, for the `labelled` format.
  c.data.neutral = 1.0  # PRM800K's neutral rating.
  c.data.step_format = "lines"  # How a solution's steps are joined into text.
  c.data.standin = False  # No files: a small packaged Math-Shepherd-format stand-in.
  c.rm = mlc.ConfigDict()
  c.rm.kind = "prm"  # `prm` (every step end) or `orm` (the last step only).
  c.rm.head = "scalar"  # `scalar` (a fresh head) or `token` (Math-Shepherd's +/- LM head).
  c.rm.good_token = "+"  # The token head's label tokens: one token each.
  c.rm.bad_token = "-"
  c.rm.max_len = 256  # Tokens of [bos, prompt, solution].
  c.rm.max_steps = 16
  c.optim = mlc.ConfigDict()
  c.optim.learning_rate = 1e-4
  c.optim.warmup_steps = 20
  c.optim.min_lr_ratio = 0.1
  c.optim.weight_decay = 0.0
  c.optim.grad_clip = 1.0
  c.optim.batch_size = 32
  c.eval = mlc.ConfigDict()
  c.eval.every = 100
  c.eval.batch_size = 32
  c.log_every = 10
  c.checkpoint_every = 200
  c.keep_checkpoints = 3
  return c


def validate(c: mlc.ConfigDict, batch_devices: int) -> None:
  """One sentence naming a bad field and the fix."""
  if c.rm.kind not in KINDS:
    raise ValueError(f"config.rm.kind is {c.rm.kind!r}; choose one of {KINDS}.")
  if c.rm.head not in rm_lib.HEADS:
    raise ValueError(f"config.rm.head is {c.rm.head!r}; choose one of {rm_lib.HEADS}.")
  if c.rm.head == "token" and c.rm.good_token == c.rm.bad_token:
    raise ValueError("config.rm.good_token and bad_token are the same; give two tokens.")
  if c.data.format not in sd.READERS:
    raise ValueError(
      f"config.data.format is {c.data.format!r}; choose one of {sorted(sd.READERS)}."
    )
  if not (c.data.manual_dir or c.data.standin):
    raise ValueError("config.data.manual_dir is empty; point it at train.jsonl/test.jsonl.")
  for field in ("total_steps", "optim.batch_size", "eval.batch_size", "rm.max_len", "rm.max_steps"):
    section, _, name = field.rpartition(".")
    value = c[section][name] if section else c[name]
    if value < 1:
      raise ValueError(f"config.{field} is {value}; set it to at least 1.")
  for field in ("optim.batch_size", "eval.batch_size"):
    section, name = field.split(".")
    if c[section][name] % batch_devices:
      raise ValueError(
        f"config.{field} ({c[section][name]}) is not divisible by the data x fsdp mesh size "
        f"({batch_devices}); change it or config.mesh_shape."
      )
