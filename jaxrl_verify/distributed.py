"""Moving batches between this host's rows and global device arrays.

Each process owns a contiguous slice of every global batch (its prompts, its
completions, its verifier pool). These helpers convert between that host-local
numpy slice and a global `jax.Array` sharded along the batch axis over
('data', 'fsdp'). With one process they are plain device transfers.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, PartitionSpec

from jaxrl_verify import sharding


def _batch_spec(x) -> PartitionSpec:
  return PartitionSpec(sharding.BATCH_AXES, *([None] * (np.ndim(x) - 1)))


def to_global(tree: Any, mesh: Mesh) -> Any:
  """Host-local numpy rows -> global arrays sharded along the leading axis."""
  if jax.process_count() == 1:
    return jax.tree.map(
      lambda x: jax.device_put(x, sharding.batch_sharding(mesh, np.ndim(x))), tree
    )
  specs = jax.tree.map(_batch_spec, tree)
  return multihost_utils.host_local_array_to_global_array(tree, mesh, specs)


def to_local(tree: Any, mesh: Mesh) -> Any:
  """Global batch-sharded arrays -> this host's rows as numpy."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  specs = jax.tree.map(_batch_spec, tree)
  local = multihost_utils.global_array_to_host_local_array(tree, mesh, specs)
  return jax.tree.map(np.asarray, local)


def is_main_process() -> bool:
  return jax.process_index() == 0
