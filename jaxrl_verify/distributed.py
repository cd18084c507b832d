"""Multi-controller JAX: start-up, host-local <-> global batches, cross-process reductions.

Every process runs the same program (`python -m jaxrl_verify.train ...` on each host,
e.g. `gcloud compute tpus tpu-vm ssh --worker=all`); no Pathways, no Kubernetes.

Start-up (`initialize`, before anything touches a device) picks one of three modes:

* explicit: a coordinator address `host:port` (flag `--coordinator_address` or env
  `JAX_COORDINATOR_ADDRESS`) plus the process count and this process's id (flags
  `--num_processes`/`--process_id` or env `JAX_NUM_PROCESSES`/`JAX_PROCESS_ID`). For CPU
  and GPU clusters, and for N processes on one machine (`launch/multiprocess_cpu.sh`).
* automatic: no coordinator given, but JAX recognises the cluster (Cloud TPU VM slices
  through the metadata server, Slurm, Open MPI): `jax.distributed.initialize()` with no
  arguments. This is the TPU pod path.
* single process: neither; nothing is initialised.

CPU collectives across processes go over gloo (set before the backend starts).

Batches: each process owns a contiguous slice of every global batch (its prompts, its
completions, its verifier pool). `to_global`/`to_local` convert between that host-local
numpy slice and a global `jax.Array` sharded along the batch axis over ('data', 'fsdp');
with one process they are plain device transfers. `gather_rows`/`all_sum` turn host
statistics into global ones; `main_process_first` and `share_file` keep processes from
racing on a shared directory. All of these are collectives: call them on every process,
in the same order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from absl import flags, logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, PartitionSpec

from jaxrl_verify import sharding

_COORDINATOR = flags.DEFINE_string(
  "coordinator_address",
  None,
  "host:port of process 0 for multi-process runs on CPU/GPU clusters (env "
  "JAX_COORDINATOR_ADDRESS). Leave unset on TPU pods and Slurm: detected automatically.",
)
_NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes", None, "Number of processes with --coordinator_address (env JAX_NUM_PROCESSES)."
)
_PROCESS_ID = flags.DEFINE_integer(
  "process_id", None, "This process's id in [0, num_processes) (env JAX_PROCESS_ID)."
)


# ----------------------------------------------------------------------------- start-up


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"Environment variable {name}={value!r} must be an integer.") from None


def initialize(
  coordinator: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> bool:
  """Starts `jax.distributed` if this is a multi-process run; call before any device use.

  Args:
    coordinator: `host:port` of process 0 (default: env `JAX_COORDINATOR_ADDRESS`). Without
      one, a cluster JAX recognises (Cloud TPU VM slice, Slurm, Open MPI) is set up
      automatically, and anywhere else the run stays single-process.
    num_processes: total processes (default: env `JAX_NUM_PROCESSES`, else the cluster's).
      1 means single-process: nothing is initialised.
    process_id: this process's id (default: env `JAX_PROCESS_ID`, else the cluster's).

  Returns:
    Whether `jax.distributed` is initialised (True also if it already was).

  Raises:
    ValueError: an incomplete or inconsistent explicit set-up, in one sentence.
  """
  if jax.distributed.is_initialized():
    return True
  coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
  process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
  if num_processes == 1:
    return False
  if coordinator is None and os.environ.get("SLURM_NTASKS") == "1":
    # One Slurm task: JAX's Slurm detection would restrict it to a single local GPU.
    return False
  if coordinator is not None and ":" not in coordinator:
    raise ValueError(
      f"--coordinator_address={coordinator!r} needs a port, e.g. 10.0.0.2:1234 (process 0's "
      "host and a free port every process can reach)."
    )
  if num_processes is not None and num_processes < 1:
    raise ValueError(f"--num_processes={num_processes} must be at least 1.")
  if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
    raise ValueError(
      f"--process_id={process_id} must be in [0, {num_processes}) (--num_processes)."
    )
  # Cross-process collectives on the CPU backend (tests, laptops, host-side reductions)
  # need a transport; gloo ships with jaxlib. Other backends ignore this setting.
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator is None:
    try:
      jax.distributed.initialize()  # Cluster auto-detection: TPU VM slice, Slurm, Open MPI.
    except ValueError:
      if num_processes is not None or process_id is not None:
        raise ValueError(
          "--num_processes/--process_id were given without --coordinator_address and no "
          "cluster was detected; also pass --coordinator_address=HOST:PORT of process 0."
        ) from None
      return False  # Not a recognised cluster: a single-process run.
  else:
    try:
      jax.distributed.initialize(coordinator, num_processes, process_id)
    except ValueError as e:
      raise ValueError(
        f"Cannot start multi-process JAX with coordinator {coordinator} ({e}); pass "
        "--num_processes and --process_id too (or JAX_NUM_PROCESSES/JAX_PROCESS_ID)."
      ) from None
  logging.info(
    "jax.distributed: process %d of %d, %d local / %d global devices.",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )
  return True


def initialize_from_flags() -> bool:
  """`initialize` from `--coordinator_address/--num_processes/--process_id` (or the env)."""
  return initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)


def is_main_process() -> bool:
  """Process 0 writes metrics, logs, plots and shared files."""
  return jax.process_index() == 0


# ----------------------------------------------------------------------------- batches


def _batch_spec(x) -> PartitionSpec:
  return PartitionSpec(sharding.BATCH_AXES, *([None] * (np.ndim(x) - 1)))


def to_global(tree: Any, mesh: Mesh) -> Any:
  """Host-local numpy rows -> global arrays sharded along the leading axis.

  Process i's rows become rows [i*n, (i+1)*n) of the global array (n rows per process).
  """
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


# ----------------------------------------------------------------------------- reductions


def gather_rows(x) -> np.ndarray:
  """Every process's rows of `x`, concatenated along axis 0 in process order (collective).

  Each process must pass the same shape and dtype; with one process this is `np.asarray(x)`.
  """
  x = np.asarray(x)
  if jax.process_count() == 1:
    return x
  return np.asarray(multihost_utils.process_allgather(x, tiled=x.ndim > 0))


def all_sum(x) -> np.ndarray:
  """The elementwise sum of `x` over processes (collective; same shape everywhere)."""
  x = np.asarray(x)
  if jax.process_count() == 1:
    return x
  return np.asarray(multihost_utils.process_allgather(x)).sum(axis=0).astype(x.dtype)


# ----------------------------------------------------------------------------- shared files


def barrier(name: str) -> None:
  """Blocks until every process has reached the barrier `name` (no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def main_process_first(name: str) -> Iterator[None]:
  """Runs the body on process 0 first, then on the others (e.g. preparing a shared data_dir).

  Deterministic work (dataset generation) done this way is done once on a shared
  filesystem and repeated identically on per-host ones, never concurrently into one place.
  """
  if not is_main_process():
    barrier(f"{name}: main done")
  yield
  if is_main_process():
    barrier(f"{name}: main done")


def share_file(path: str, create: Callable[[], None]) -> None:
  """Makes `path` exist with process 0's contents on every process (collective).

  Process 0 calls `create()` (which must write `path`) if the file is missing; its bytes
  are then broadcast and written by any process whose copy is missing or differs. Works
  whether `path` is on a shared filesystem or on each host's own disk.
  """
  if jax.process_count() == 1:
    if not os.path.exists(path):
      create()
    return
  data = b""
  if is_main_process():
    if not os.path.exists(path):
      create()
    with open(path, "rb") as f:
      data = f.read()
  size = int(multihost_utils.broadcast_one_to_all(np.asarray(len(data), np.int64)))
  buf = np.frombuffer(data, np.uint8) if is_main_process() else np.zeros(size, np.uint8)
  data = np.asarray(multihost_utils.broadcast_one_to_all(buf)).tobytes()
  if not is_main_process():
    current = None
    if os.path.exists(path):
      with open(path, "rb") as f:
        current = f.read()
    if current != data:
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
      tmp = f"{path}.tmp{jax.process_index()}"
      with open(tmp, "wb") as f:
        f.write(data)
      os.replace(tmp, path)  # Atomic: a reader never sees half a file.
  barrier(f"share_file {path}")


# ----------------------------------------------------------------------------- state


def init_optimizer(tx, params: Any, mesh: Mesh) -> Any:
  """`tx.init(params)` laid out on the mesh: moments sharded like `params`, scalars replicated.

  A plain `jax.jit(tx.init)(params)` leaves every leaf on one device (they do not depend
  on the parameters' values), which both wastes memory (unsharded moments) and cannot be
  checkpointed or fed to a jitted update by several processes.
  """
  out = sharding.optimizer_shardings(tx, params, mesh)
  return jax.jit(tx.init, out_shardings=out)(params)
