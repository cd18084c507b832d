r"""Will this config fit that TPU slice? Compile it ahead of time, without the TPUs.

  python -m jaxrl_verify.compile_check --config=configs/grpo_gsm8k_qwen2p5_1p5b.py \
    --topology=v5p-16

Lowers and compiles, for the slice's devices (from `jax.experimental.topologies`, which
the `libtpu` wheel provides on any machine, CPU-only included: `pip install -e '.[tpu]'`):

* `sample`: the sampler's generate program for one RL step's batch
  (prompts_per_step x group_size rows, max_prompt_len + max_new_tokens cache slots);
* `train_step`: the jitted RL update (PPO epochs, minibatches, accumulation) on the full
  `TrainState` (policy, optimizer states, reference, value model), donated as in train.py.

and prints each program's per-device memory from XLA's analysis: arguments, outputs
(minus what aliases donated arguments), temporaries, code, and the total against the
chip's HBM. When XLA itself refuses to compile for lack of HBM, the temporaries it asked
for are reported instead (outputs and code then read 0). While sampling, the rest of the
state (optimizer moments, reference, critic) stays resident, so `sample` also counts it.
Exits with status 1 if a program does not fit.

Parameters come from the config's model preset (or `model.init_from`'s model_config.json
when that directory exists); the vocabulary is the preset's for pretrained presets and
`tokenizer.vocab_size` rounded up to 128 for `tiny`/`mini` (whose runs train a tokenizer).
`--topology` takes a Cloud TPU accelerator type (`v5p-64`, `v5litepod-16`, `v6e-8`,
`v4-32`) or a topology name (`v5p:4x4x2`, `v5e:2x2`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx

from jaxrl_verify import config_lib, run_flags, setup_lib
from jaxrl_verify import sharding as shd
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.rl import update as update_lib
from jaxrl_verify.sampler import Sampler

_TOPOLOGY = flags.DEFINE_string("topology", None, "e.g. v5p-64, v5litepod-16 or v5p:4x4x2.")

GIB = 1024**3
# Nominal HBM per chip (one JAX device per chip on v4/v5p megacore and on v5e/v6e).
HBM_BYTES = {
  "TPU v4": 32 * GIB,
  "TPU v5 lite": 16 * GIB,
  "TPU v5": int(95.73 * GIB),  # v5p: what XLA reports as available.
  "TPU v6 lite": 32 * GIB,
}
# Accelerator-type prefix -> (topology-name prefix, TensorCores per chip, torus dims).
_GENERATIONS = {
  "v4": ("v4", 2, 3),
  "v5p": ("v5p", 2, 3),
  "v5e": ("v5e", 1, 2),
  "v5litepod": ("v5e", 1, 2),
  "v6e": ("v6e", 1, 2),
}


def topology_name(accelerator: str) -> str:
  """`v5p-64` -> `v5p:4x4x2` (32 chips); a topology name passes through unchanged.

  Raises:
    ValueError: an unknown generation or a core count that is not a power of two.
  """
  if ":" in accelerator:
    return accelerator
  m = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", accelerator)
  if not m:
    raise ValueError(
      f"--topology={accelerator!r} is not an accelerator type like v5p-64, v5litepod-16, "
      "v6e-8, v4-32, nor a topology like v5p:4x4x2."
    )
  prefix, cores_per_chip, ndim = _GENERATIONS[m.group(1)]
  chips = int(m.group(2)) // cores_per_chip
  if chips < 1 or chips & (chips - 1):
    raise ValueError(f"--topology={accelerator!r}: {chips} chips is not a power of two.")
  dims = [1] * ndim
  for _ in range(int(math.log2(chips))):  # Double the smallest dimension: 2x2x1, 2x2x2, 2x2x4 ...
    dims[dims.index(min(dims))] *= 2
  dims = sorted(dims, key=lambda d: (d == 1, d))  # Cloud TPU's order: 2x2x1, 2x4x4, 2x4.
  return f"{prefix}:{'x'.join(str(d) for d in dims)}"


def topology_devices(accelerator: str) -> list:
  """Compile-only devices of the slice (needs the `libtpu` wheel, not a TPU)."""
  from jax.experimental import topologies

  # Another process on this machine may hold libtpu's lock; compiling needs no chip.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    return list(
      topologies.get_topology_desc(platform="tpu", topology_name=topology_name(accelerator)).devices
    )
  except Exception as e:  # libtpu missing or the name unknown: say which, in one sentence.
    raise ValueError(
      f"Cannot describe TPU topology {topology_name(accelerator)!r} ({str(e).splitlines()[0]}); "
      "install libtpu (pip install -e '.[tpu]') and check the name."
    ) from None


def model_config_of(config):
  """The model the run would build, without loading weights or training a tokenizer.

  The CPU presets (`tiny`, `mini`) get the vocabulary of the tokenizer the run would train
  (`tokenizer.vocab_size`); real presets keep their own.
  """
  tiny = config.model.preset in ("tiny", "mini") and not config.model.init_from
  return setup_lib.model_config_for(config, config.tokenizer.vocab_size if tiny else None)


def per_device_bytes(tree) -> int:
  """Bytes of one device's shard of every leaf (the largest shard, for uneven splits)."""
  total = 0
  for x in jax.tree.leaves(tree):
    shape = x.sharding.shard_shape(x.shape) if x.sharding is not None else x.shape
    total += math.prod(shape) * jnp.dtype(x.dtype).itemsize
  return total


@dataclasses.dataclass
class Report:
  """Per-device memory of one compiled program (bytes).

  Attributes:
    name: `sample` or `train_step`.
    arguments, outputs, aliased, temporaries, code: from `compiled.memory_analysis()`.
    resident: state that is not an argument but stays on the device meanwhile.
    hbm: the chip's HBM.
  """

  name: str
  arguments: int
  outputs: int
  aliased: int
  temporaries: int
  code: int
  resident: int
  hbm: int

  @property
  def total(self) -> int:
    return (
      self.arguments + self.outputs - self.aliased + self.temporaries + self.code + self.resident
    )

  @property
  def fits(self) -> bool:
    return self.total <= self.hbm

  def line(self) -> str:
    cells = (self.arguments, self.outputs - self.aliased, self.temporaries, self.code)
    cells += (self.resident, self.total)
    return (
      f"{self.name:<11}{''.join(f'{_size(c):>11}' for c in cells)} / {_size(self.hbm)}  "
      f"{'fits' if self.fits else 'DOES NOT FIT'}"
    )


def _size(num_bytes: int) -> str:
  if num_bytes >= GIB:
    return f"{num_bytes / GIB:.2f} GiB"
  return f"{num_bytes / 2**20:.1f} MiB"


_OOM = re.compile(
  r"HLO temporaries \(([\d.]+)([KMGT])\) exceeds available HBM \(([\d.]+)([KMGT])\)"
)


def _bytes(number: str, unit: str) -> int:
  return int(float(number) * 1024 ** "KMGT".index(unit) * 1024)


def _compile(name: str, lowered, args, resident: int, hbm: int) -> Report:
  """Compiles `lowered`; XLA's compile-time out-of-memory becomes a report that does not fit."""
  try:
    m = lowered.compile().memory_analysis()
  except jax.errors.JaxRuntimeError as e:
    oom = _OOM.search(str(e))
    if oom is None:
      raise
    hbm = _bytes(*oom.group(3, 4))  # XLA's own figure for the chip's usable HBM.
    temporaries = _bytes(*oom.group(1, 2))
    return Report(name, per_device_bytes(args), 0, 0, temporaries, 0, resident, hbm)
  return Report(
    name,
    int(m.argument_size_in_bytes),
    int(m.output_size_in_bytes),
    int(m.alias_size_in_bytes),
    int(m.temp_size_in_bytes),
    int(m.generated_code_size_in_bytes),
    resident,
    hbm,
  )


def check(config, devices) -> list[Report]:
  """Compiles the sampler and the train step of `config` for `devices`; returns reports."""
  mesh = shd.make_mesh(config.mesh_shape, devices=devices)
  config_lib.validate(config, mesh)
  rules = tuple(config.sharding_rules)
  cfg = model_config_of(config)
  hbm = HBM_BYTES.get(devices[0].device_kind, 0)

  policy_graphdef, policy = shd.abstract_sharded(
    lambda: Transformer(cfg, rngs=nnx.Rngs(0)), mesh, rules
  )
  value_graphdef, value = setup_lib.value(config, cfg, mesh, abstract=True) or (None, None)
  txs = setup_lib.optimizers(config)
  state = setup_lib.train_state_target(config, policy, value, txs, mesh)
  replicated = lambda shape, dtype: jax.ShapeDtypeStruct(  # noqa: E731
    shape, dtype, sharding=shd.replicated(mesh)
  )

  g = config.rollout.prompts_per_step * config.rollout.group_size
  p, t = config.task.max_prompt_len, config.rollout.max_new_tokens
  rows = lambda shape, dtype: jax.ShapeDtypeStruct(  # noqa: E731
    shape, dtype, sharding=shd.batch_sharding(mesh, len(shape))
  )
  sampler = Sampler(
    policy_graphdef, cfg, max_prompt_len=p, max_new_tokens=t, eos_id=1, pad_id=0, mesh=mesh
  )
  sampling = setup_lib.sampling_params(config)
  sample_args = (
    policy,
    rows((g, p), jnp.int32),
    rows((g, p), jnp.bool_),
    replicated((2,), jnp.uint32),
    replicated((), jnp.int32),
  )
  # As train.py samples: each group's prompt is prefilled once (prompt_repeats).
  sample = sampler._fn(sampling.static_key, config.rollout.group_size).lower(*sample_args)

  f32 = lambda: rows((g, t), jnp.float32)  # noqa: E731
  batch = update_lib.TrainBatch(
    prompt_gp=rows((g, p), jnp.int32),
    prompt_mask_gp=rows((g, p), jnp.bool_),
    completion_gt=rows((g, t), jnp.int32),
    completion_mask_gt=rows((g, t), jnp.bool_),
    mask_gt=f32(),
    logp_old_gt=f32(),
    sample_logp_gt=f32(),
    ref_logp_gt=f32(),
    advantages_gt=f32(),
    returns_gt=f32(),
    values_old_gt=f32(),
  )
  update_fn = update_lib.make_update_fn(
    policy_graphdef, value_graphdef, txs.policy, txs.value, setup_lib.loss_config(config)
  )
  train_step = jax.jit(update_fn, donate_argnums=0).lower(state, batch)

  rest = per_device_bytes(state) - per_device_bytes(policy)
  return [
    _compile("sample", sample, sample_args, rest, hbm),
    _compile("train_step", train_step, (state, batch), 0, hbm),
  ]


def main(argv):
  del argv
  config = run_flags.CONFIG.value
  if config is None or _TOPOLOGY.value is None:
    raise app.UsageError("--config and --topology are required, e.g. --topology=v5p-64.")
  devices = topology_devices(_TOPOLOGY.value)
  reports = check(config, devices)
  mesh = shd.make_mesh(config.mesh_shape, devices=devices)
  print(
    f"{_TOPOLOGY.value} ({topology_name(_TOPOLOGY.value)}): {len(devices)} x "
    f"{devices[0].device_kind}, mesh {dict(mesh.shape)}"
  )
  header = ("arguments", "outputs", "temps", "code", "resident", "total")
  print(f"{'per device':<11}{''.join(f'{h:>11}' for h in header)} / HBM")
  for r in reports:
    print(r.line())
  if not all(r.fits for r in reports):
    print(
      "Does not fit: raise optim.grad_accum_steps or ppo.minibatches (smaller microbatches), "
      "use model.remat, shorten rollout.max_new_tokens, or shard more (config.mesh_shape)."
    )
    sys.exit(1)


if __name__ == "__main__":
  run_flags.run(main)
