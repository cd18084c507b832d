"""The reward-model trainer: `train_rm(config, workdir)`, shared by `train_rm` (its entry
point) and `pipeline` (process supervision end to end).

mesh -> data (step-labelled files: Math-Shepherd, PRM800K, TRL stepwise or `label_cli`
output, in `config.data.manual_dir`) -> tokenizer -> reward model (a backbone with a scalar
head, from `model.init_from`'s policy or fresh) -> restore or init -> loop(batch, update,
log, eval, checkpoint). Writes WORKDIR/metrics.jsonl (`loss`, `step_accuracy`,
`grad_norm`, and held-out `eval/loss`, `eval/step_accuracy`), TensorBoard events under
WORKDIR/tb and orbax checkpoints of the whole state under WORKDIR/checkpoints; rerunning
resumes, bit for bit (batches are a function of the step).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time

import jax
import ml_collections as mlc
import numpy as np
from absl import logging
from flax import nnx

from jaxrl_verify import checkpoint as ckpt_lib
from jaxrl_verify import config_lib, distributed, periodic
from jaxrl_verify import sharding as shd
from jaxrl_verify.metrics import MetricsWriter
from jaxrl_verify.process import rm, rm_config, rm_setup
from jaxrl_verify.process import steps as steps_lib
from jaxrl_verify.process import stepwise_data as sd

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin", "math_shepherd.jsonl")


@dataclasses.dataclass
class _Data:
  train: list[sd.LabelledSolution]
  test: list[sd.LabelledSolution]


def _read_data(c, workdir: str) -> _Data:
  manual = c.data.manual_dir
  if c.data.standin and not manual:
    manual = os.path.join(workdir, "data", "manual", "stepwise_standin")
    os.makedirs(manual, exist_ok=True)
    for split in ("train", "test"):
      shutil.copy(STANDIN, os.path.join(manual, f"{split}.jsonl"))
  fmt = "math_shepherd" if c.data.standin and not c.data.manual_dir else c.data.format
  options = {"soft": c.data.soft} if fmt == "labelled" else {}
  options = {"neutral": c.data.neutral} if fmt == "prm800k" else options
  data_dir = c.data.data_dir or os.path.join(workdir, "data")

  def split(name: str) -> list[sd.LabelledSolution]:
    source = sd.data_source(manual, data_dir, name, fmt, **options)
    return [
      sd.LabelledSolution(
        str(ex["prompt"]),
        tuple(s.decode() if isinstance(s, bytes) else str(s) for s in ex["steps"]),
        tuple(float(x) for x in ex["labels"]),
      )
      for ex in (source[i] for i in range(len(source)))
    ]

  with distributed.main_process_first("prepare rm data"):
    return _Data(split("train"), split("test"))


def _batch(c, tok, fmt, solutions, rows) -> rm.RMBatch:
  chosen = [solutions[int(i)] for i in rows]
  return rm.pack(
    tok,
    [s.prompt for s in chosen],
    [s.steps for s in chosen],
    [s.labels for s in chosen],
    fmt,
    max_len=c.rm.max_len,
    max_steps=c.rm.max_steps,
    outcome_only=c.rm.kind == "orm",
  )


def train_rows(c, num: int, step: int) -> np.ndarray:
  """The train rows of optimizer step `step` (1-based): epochs of seeded permutations, so a
  resumed run sees exactly the batches an uninterrupted one would."""
  per_epoch = max(num // c.optim.batch_size, 1)
  epoch, j = divmod(step - 1, per_epoch)
  order = np.random.default_rng([c.seed, epoch]).permutation(num)
  order = np.resize(order, per_epoch * c.optim.batch_size)
  return order[j * c.optim.batch_size : (j + 1) * c.optim.batch_size]


def train_rm(c: mlc.ConfigDict, workdir: str, *, stop_after: int | None = None):
  """Trains (or resumes) the reward model in `workdir`; returns (RMState, last metrics)."""
  t_start = time.perf_counter()
  config_lib.check_workdir(workdir)
  mesh = shd.make_mesh(c.mesh_shape)
  rm_config.validate(c, mesh.shape["data"] * mesh.shape["fsdp"])
  fmt = steps_lib.step_format(c.data.step_format)

  # ---------------------------------------------------------------- data, tokenizer, model
  data = _read_data(c, workdir)
  logging.info("%d train and %d held-out solutions.", len(data.train), len(data.test))
  texts = [s.prompt for s in data.train] + [x for s in data.train for x in s.steps]
  tok = rm_setup.tokenizer(c, workdir, texts)
  cfg = rm_setup.model_config(c, tok)
  graphdef, state = rm_setup.init(c, cfg, tok, mesh)
  tx = rm_setup.optimizer(c)
  train_step = jax.jit(rm.make_train_step(graphdef, tx))
  eval_loss = jax.jit(
    lambda p, b: rm.bce_loss(rm.step_logits(nnx.merge(graphdef, p), b), b.label_bs, b.step_mask_bs)
  )

  def device_batch(solutions, rows):
    host = _batch(c, tok, fmt, solutions, rows)
    return rm.RMBatch(**distributed.to_global(dict(vars(host)), mesh))

  def evaluate(params) -> dict[str, float]:
    sums, n = {"eval/loss": 0.0, "eval/step_accuracy": 0.0}, 0
    size = c.eval.batch_size
    for a in range(0, len(data.test), size):  # The last batch wraps around to the start.
      rows = np.arange(a, a + size) % len(data.test)
      _, m = eval_loss(params, device_batch(data.test, rows))
      sums["eval/loss"] += float(m["loss"])
      sums["eval/step_accuracy"] += float(m["step_accuracy"])
      n += 1
    return {k: v / n for k, v in sums.items()}

  # ---------------------------------------------------------------- restore or start
  checkpointer = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), max_to_keep=c.keep_checkpoints
  )
  start = None
  if checkpointer.latest_step() is not None:
    start, state, _ = checkpointer.restore_latest(shd.as_abstract(state), set_aside_damaged=True)
    logging.info("Resumed from step %d of %s.", start, workdir)
  writer = MetricsWriter(
    workdir,
    is_main_process=distributed.is_main_process(),
    total_steps=c.total_steps,
    resume_step=start,
  )
  if start is None:
    writer.write(0, evaluate(state.params))
    start = 0

  # ---------------------------------------------------------------- the loop
  metrics: dict[str, float] = {}
  try:
    with ckpt_lib.PreemptionGuard() as guard:
      for step in range(start + 1, c.total_steps + 1):
        batch = device_batch(data.train, train_rows(c, len(data.train), step))
        params, opt_state, m = train_step(state.params, state.opt_state, batch)
        state = rm_setup.RMState(state.step + 1, params, opt_state)
        metrics = {k: float(v) for k, v in jax.device_get(m).items()}
        if step == c.total_steps or periodic.every(step, c.eval.every):
          metrics.update(evaluate(state.params))
        if "eval/loss" in metrics or periodic.every(step, c.log_every, total_steps=c.total_steps):
          writer.write(step, metrics)
        stop = guard.should_stop_any_process() or step == stop_after
        if stop or periodic.every(step, c.checkpoint_every, total_steps=c.total_steps):
          checkpointer.save(step, state, {"config": c.to_dict()}, force=True)
        if stop:
          logging.warning("Stopping at step %d; resume with the same command.", step)
          break
    checkpointer.wait()
  finally:
    checkpointer.close()
    writer.close()
  if distributed.is_main_process():
    print(
      f"Done: {int(state.step)} {c.rm.kind.upper()} steps in {workdir} "
      f"({time.perf_counter() - t_start:.0f} s this run); held-out "
      f"loss {metrics.get('eval/loss', float('nan')):.4f}, step accuracy "
      f"{metrics.get('eval/step_accuracy', float('nan')):.3f}.",
      flush=True,
    )
  return state, metrics
