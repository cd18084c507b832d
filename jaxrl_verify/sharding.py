"""Device mesh, logical-axis rules, and shardings for parameter and batch pytrees.

Parameters carry logical axis names (`jaxrl_verify.models`); a short rule table
(in the config) maps each name to a mesh axis or to None (replicated). Parameters
are created directly sharded: abstract shapes first (`nnx.eval_shape`), then their
shardings, then `jit(init, out_shardings=...)`, so no host ever holds a full replica.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
from absl import logging
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# Logical name -> mesh axis (or None). Batch goes over data and fsdp; weights are
# sharded over fsdp along `embed` (ZeRO-3 style) and over tensor along heads/mlp/vocab.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
  ("batch", BATCH_AXES),
  ("vocab", "tensor"),
  ("embed", "fsdp"),
  ("heads", "tensor"),
  ("kv_heads", "tensor"),
  ("mlp", "tensor"),
  ("head_dim", None),
  ("norm", None),
)


def make_mesh(mesh_shape: Sequence[int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A ('data', 'fsdp', 'tensor') mesh; one entry may be -1 to take the remaining devices.

  The axes are `Auto`: the model carries no sharding annotations of its own, and the
  compiler propagates the parameter and batch shardings through it. Explicit axes
  would require an `out_sharding` on every contraction over an fsdp-sharded weight,
  which buys nothing for this architecture and obscures the model code.
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = [int(s) for s in mesh_shape]
  if len(shape) != len(MESH_AXES):
    raise ValueError(
      f"mesh_shape {tuple(mesh_shape)} must have {len(MESH_AXES)} entries for the axes "
      f"{MESH_AXES}, e.g. (-1, 1, 1)."
    )
  if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ValueError(f"mesh_shape {tuple(mesh_shape)} must hold positive sizes and at most one -1.")
  if -1 in shape:
    rest = math.prod(s for s in shape if s != -1)
    if len(devices) % rest:
      raise ValueError(
        f"mesh_shape {tuple(mesh_shape)} cannot be filled: {len(devices)} devices are not a "
        f"multiple of {rest}; change config.mesh_shape."
      )
    shape[shape.index(-1)] = len(devices) // rest
  if math.prod(shape) != len(devices):
    raise ValueError(
      f"mesh_shape {tuple(shape)} needs {math.prod(shape)} devices but {len(devices)} are "
      "available; set config.mesh_shape so that its product equals the device count "
      "(or use -1 for one axis)."
    )
  return jax.make_mesh(
    tuple(shape), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices
  )


def logical_to_spec(logical_axes: Sequence[str | None] | None, rules) -> PartitionSpec:
  """PartitionSpec for one array from its logical axis names and the rule table."""
  if not logical_axes:
    return PartitionSpec()
  table = dict(rules)
  used: set[str] = set()
  spec = []
  for name in logical_axes:
    target = table.get(name) if name is not None else None
    targets = (target,) if isinstance(target, str) else tuple(target or ())
    # A mesh axis may shard only one dimension of an array; later uses replicate.
    targets = tuple(t for t in targets if t not in used)
    used.update(targets)
    spec.append(None if not targets else targets[0] if len(targets) == 1 else targets)
  return PartitionSpec(*spec)


def _mesh_size(mesh: Mesh, entry) -> int:
  if entry is None:
    return 1
  names = (entry,) if isinstance(entry, str) else entry
  return math.prod(mesh.shape[n] for n in names)


def state_shardings(abstract_state: Any, mesh: Mesh, rules=DEFAULT_RULES) -> Any:
  """NamedShardings for an (abstract) NNX state, same tree structure, divisibility checked."""

  def one(path, var):
    value = var.get_value() if isinstance(var, nnx.Variable) else var
    axes = var.get_metadata().get("logical_axes") if isinstance(var, nnx.Variable) else None
    spec = logical_to_spec(axes, rules)
    for dim, entry in zip(value.shape, spec):
      if dim % _mesh_size(mesh, entry):
        name = jax.tree_util.keystr(path)
        raise ValueError(
          f"Parameter {name} of shape {value.shape} (logical axes {axes}) has a dimension of "
          f"{dim} that the mesh axis {entry!r} of size {_mesh_size(mesh, entry)} does not "
          "divide; change config.mesh_shape or map that logical axis to None in "
          "config.sharding_rules."
        )
    sharding = NamedSharding(mesh, spec)
    return var.replace(sharding) if isinstance(var, nnx.Variable) else sharding

  return jax.tree_util.tree_map_with_path(
    one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable)
  )


def create_sharded(factory: Callable[[], nnx.Module], mesh: Mesh, rules=DEFAULT_RULES):
  """Builds `factory()` with every parameter created directly in its sharding.

  Returns:
    (graphdef, state, shardings): `nnx.merge(graphdef, state)` is the module.
  """
  abstract = nnx.eval_shape(factory)
  graphdef, abstract_state = nnx.split(abstract)
  shardings = state_shardings(abstract_state, mesh, rules)
  state = jax.jit(lambda: nnx.split(factory())[1], out_shardings=shardings)()
  return graphdef, state, shardings


def abstract_sharded(factory: Callable[[], nnx.Module], mesh: Mesh, rules=DEFAULT_RULES):
  """(graphdef, state of `jax.ShapeDtypeStruct`s carrying shardings): nothing allocated.

  What `create_sharded` would build, for restore targets and ahead-of-time compilation.
  """
  graphdef, abstract_state = nnx.split(nnx.eval_shape(factory))
  return graphdef, as_abstract(abstract_state, state_shardings(abstract_state, mesh, rules))


def as_abstract(tree: Any, shardings: Any = None) -> Any:
  """`jax.ShapeDtypeStruct`s of `tree`'s leaves, with `shardings` (default: the leaves' own)."""
  if shardings is None:
    shardings = jax.tree.map(lambda x: x.sharding, tree)
  return jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
  )


def optimizer_shardings(tx, params: Any, mesh: Mesh) -> Any:
  """Shardings of `tx.init(params)`: moments like their parameters, scalars replicated.

  `params` may be arrays or `jax.ShapeDtypeStruct`s, each carrying its sharding.
  """
  import optax  # Local: only optimizer users need it.

  abstract = jax.eval_shape(tx.init, params)
  return optax.tree_utils.tree_map_params(
    tx,
    lambda _, s: s,
    abstract,
    jax.tree.map(lambda x: x.sharding, params),
    transform_non_params=lambda _: replicated(mesh),
  )


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
  """Leading (batch) axis over ('data', 'fsdp'), the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def check_batch_divides(batch: int, mesh: Mesh, field: str = "batch size") -> None:
  n = _mesh_size(mesh, BATCH_AXES)
  if batch % n:
    raise ValueError(
      f"The {field} ({batch}) must be divisible by the data x fsdp mesh size ({n}); "
      "change the batch or config.mesh_shape."
    )


def describe(state: Any) -> str:
  """One line per parameter: path, shape, dtype, partition spec (logged at start-up)."""
  lines = []
  for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
    spec = getattr(getattr(x, "sharding", None), "spec", None)
    lines.append(f"{jax.tree_util.keystr(path):70s} {str(x.shape):22s} {x.dtype} {spec}")
  return "\n".join(lines)


def log_shardings(state: Any, title: str) -> None:
  logging.info("%s shardings:\n%s", title, describe(state))
