"""Checkpoints of the full RL state over orbax, plus a preemption guard.

A checkpoint step directory holds two items:

* ``state``: any pytree of jax/numpy arrays (params, value params, optimizer states, RNG keys),
  written with ``StandardSave`` so sharded arrays are written shard by shard and restored
  directly into the shardings of an abstract target (no host-side full replica).
* ``meta``: a JSON object (data iterator position, policy version, config as a dict, ...).

Typed PRNG key arrays (``jax.random.key``) are handled by orbax itself: they are stored as
their ``uint32`` key data and re-wrapped on restore when the target leaf has a key dtype.
Raw ``uint32`` keys (``jax.random.PRNGKey``) round-trip as ordinary arrays.

Multi-host: every process must call ``save``, ``restore``, ``wait`` and ``close`` with the
same arguments; orbax coordinates which process writes what. Every device array must be
global (on the mesh, e.g. keys replicated with ``NamedSharding(mesh, P())``); a single-device
array such as a bare ``jax.random.key(0)`` is rejected with a clear error. Numpy leaves are
written by the primary process and must be equal on all processes.

Damage: a step whose files are truncated, missing, unreadable or of the wrong shapes is
reported naming the step and the file. ``restore_latest`` (what a resuming run calls) then
falls back to the newest step that restores, with a warning, and can move the damaged newer
steps aside (``<directory>_damaged/<step>``: kept for inspection, out of the way of the
run's next saves); with no intact step it stops with the fix. ``restore(step)`` of an
explicit step never falls back.

Typical loop::

  ckpt = Checkpointer(workdir / "checkpoints")
  if ckpt.latest_step() is not None:
    step, state, meta = ckpt.restore_latest(abstract_state, set_aside_damaged=True)
  with PreemptionGuard() as guard:
    for step in range(start, total + 1):
      ...
      if every(step, cfg.ckpt_every, total_steps=total) or guard.should_stop:
        ckpt.save(step, state, meta, force=guard.should_stop)
      if guard.should_stop:
        break
  ckpt.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import types
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

_STATE = "state"
_META = "meta"
# Small JSON files of a step that orbax parses before any array: checked first so a damaged
# one is named (orbax would raise a bare JSONDecodeError, or read an empty tree).
_JSON_FILES = ("_CHECKPOINT_METADATA", f"{_META}/metadata", f"{_STATE}/_METADATA")


# How a full disk (or quota, or file-size limit) shows in an orbax/tensorstore write error.
_FULL_DISK_SIGNS = (
  "No space left on device",
  "File too large",
  "Disk quota exceeded",
  "os_error_code='28'",
  "os_error_code='27'",
  "os_error_code='122'",
)


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (a full disk, most often); the previous ones are
  untouched and the partial step directory has been removed."""


class DamagedCheckpointError(ValueError):
  """A checkpoint step cannot be restored: a file is truncated, missing, unreadable, or
  holds arrays of other shapes than the target."""


def _key_name(entry: Any) -> str:
  """One path entry as a plain name, so dict keys, attributes and indices compare alike."""
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def _flat_by_path(tree: Any) -> dict[str, Any]:
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {"/".join(_key_name(e) for e in path): leaf for path, leaf in leaves}


def _stored_shape(leaf: Any) -> tuple[int, ...]:
  """The shape orbax stores for a target leaf (typed keys are stored as their key data)."""
  dtype = getattr(leaf, "dtype", None)
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    return tuple(jax.eval_shape(jax.random.key_data, leaf).shape)
  return tuple(np.shape(leaf))


class Checkpointer:
  """Saves and restores ``(state pytree, JSON metadata)`` per step, keeping the newest N.

  Attributes:
    directory: where step directories (``<directory>/<step>/{state,meta}``) live.
  """

  def __init__(
    self,
    directory: str | os.PathLike,
    *,
    max_to_keep: int | None = 3,
    async_save: bool = True,
    save_interval_steps: int = 1,
  ):
    """Opens (and creates if needed) a checkpoint directory.

    Args:
      directory: local path or a remote URL understood by ``etils.epath`` (e.g. ``gs://``).
      max_to_keep: how many of the newest steps to keep; None keeps all.
      async_save: if True, ``save`` returns once arrays are copied off the device and the
        files are written in a background thread; call ``wait()`` before reading them.
      save_interval_steps: ``save`` without ``force`` only writes multiples of this (and the
        first save into an empty directory); the default 1 leaves the decision to the caller
        (see ``periodic.every``).

    Raises:
      PermissionError: the directory cannot be created or written.
    """
    self.directory = epath.Path(directory)
    self._pending_step: int | None = None  # The step of a save not yet known to be written.
    if "://" not in str(directory):
      _check_writable(self.directory)
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      save_interval_steps=save_interval_steps,
      enable_async_checkpointing=async_save,
    )
    # Explicit handlers (rather than lazy registration) let `item_metadata` read the stored
    # tree before the first restore, which the structure check below needs.
    self._manager = ocp.CheckpointManager(
      self.directory,
      item_handlers={_STATE: ocp.StandardCheckpointHandler(), _META: ocp.JsonCheckpointHandler()},
      options=options,
    )

  def all_steps(self) -> list[int]:
    """Steps with a finished checkpoint, ascending."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The newest finished step, or None if there is none."""
    return self._manager.latest_step()

  def save(
    self, step: int, state_pytree: Any, metadata: Mapping[str, Any], *, force: bool = False
  ) -> bool:
    """Starts writing ``state_pytree`` and ``metadata`` as checkpoint ``step``.

    Args:
      step: the step number; the step directory name.
      state_pytree: pytree of jax/numpy arrays (typed PRNG keys allowed).
      metadata: JSON-serialisable mapping.
      force: write even if ``step`` is not a multiple of ``save_interval_steps``.

    Returns:
      Whether a save was started. False if the interval skipped it or ``step`` already
      exists (e.g. the final step of a run that was resumed from that very step).

    Once this returns, the arrays have been copied off the device, so the caller may donate
    or overwrite ``state_pytree`` (the next jitted update) while the files are written.

    Raises:
      ValueError: ``metadata`` is not JSON-serialisable, or (multi-host) a leaf lives on one
        process's devices only.
      CheckpointWriteError: this save (or the previous async one) could not be written,
        e.g. on a full disk; the older steps are intact, the partial directory removed.
    """
    try:
      json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as e:
      raise ValueError(
        f"Checkpoint metadata for step {step} is not JSON-serialisable ({e}); pass plain "
        "dicts/lists/str/int/float (e.g. config.to_dict(), int(position))."
      ) from e
    if jax.process_count() > 1:
      _check_global(state_pytree)
    if step in self._manager.all_steps():
      logging.warning(
        "Checkpoint step %d already exists in %s; not overwriting.", step, self.directory
      )
      return False
    args = ocp.args.Composite(
      **{_STATE: ocp.args.StandardSave(state_pytree), _META: ocp.args.JsonSave(dict(metadata))}
    )
    self.wait()  # The manager would wait for the previous async save: surface its failure.
    with self._writing():
      self._pending_step = step
      started = bool(self._manager.save(step, args=args, force=force))
    if not started:
      self._pending_step = None
    return started

  @contextlib.contextmanager
  def _writing(self):
    """Turns a failed write of ``self._pending_step`` (raised by a save, or by a wait for
    an async one) into one `CheckpointWriteError`, after removing the partial directory."""
    try:
      yield
    except (OSError, ValueError) as e:
      step, self._pending_step = self._pending_step, None
      if step is None or isinstance(e, (CheckpointWriteError, DamagedCheckpointError)):
        raise
      for partial in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
        partial.rmtree(missing_ok=True)
      intact = [s for s in self.all_steps() if s != step]
      kept = f"step {intact[-1]}" if intact else "none: this was the first"
      full = any(sign in str(e) for sign in _FULL_DISK_SIGNS)
      why = "the disk is full" if full else "the write failed"
      head = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
      raise CheckpointWriteError(
        f"Could not write checkpoint step {step} to {self.directory}: {why} ({head}); the "
        f"previous checkpoint ({kept}) is intact and the partial one was removed, so free "
        "space (or move the workdir) and rerun the same command to resume."
      ) from e
    else:
      if not self._manager.is_saving_in_progress():
        self._pending_step = None

  def restore(self, step: int | None = None, *, target_pytree: Any) -> tuple[Any, dict[str, Any]]:
    """Reads checkpoint ``step`` (default: the latest) into the layout of ``target_pytree``.

    Args:
      step: which step; None means the newest one that restores (``restore_latest``).
      target_pytree: pytree of ``jax.ShapeDtypeStruct`` (or arrays) giving each leaf's shape,
        dtype and, via ``.sharding``, where its shards go; e.g. ``jax.eval_shape(init)`` with
        shardings attached. Restored arrays come back with exactly these shardings.

    Returns:
      ``(state, metadata)``: the state pytree with ``target_pytree``'s structure, and the dict.

    Raises:
      FileNotFoundError: no finished checkpoint (or not this step) in the directory.
      DamagedCheckpointError: the step cannot be read (names the file), or its stored tree
        does not match ``target_pytree`` (names the first key).
    """
    steps = self.all_steps()
    if step is None:
      _, state, meta = self.restore_latest(target_pytree)
      return state, meta
    if step not in steps:
      raise FileNotFoundError(
        f"Checkpoint step {step} does not exist in {self.directory}; available steps: {steps}."
      )
    step_dir = self.directory / str(step)
    for item in (_STATE, _META):
      if not (step_dir / item).exists():
        raise DamagedCheckpointError(
          f"{step_dir} is not a valid checkpoint (its '{item}' directory is missing); move it "
          "away or point the run at a different workdir."
        )
    self._check_json_files(step)
    self._check_structure(step, target_pytree)
    try:
      restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
          **{_STATE: ocp.args.StandardRestore(target_pytree), _META: ocp.args.JsonRestore()}
        ),
      )
    except (OSError, ValueError, KeyError) as e:
      raise _unreadable_arrays(self.directory, step, e) from e
    return restored[_STATE], dict(restored[_META] or {})

  def restore_latest(
    self, target_pytree: Any, *, set_aside_damaged: bool = False
  ) -> tuple[int, Any, dict[str, Any]]:
    """Restores the newest step that restores: ``(step, state, metadata)``.

    Newer steps that fail (``DamagedCheckpointError``) are skipped with a warning naming
    the step and the file; never silently. With ``set_aside_damaged`` (a resuming run) they
    are moved to ``<directory>_damaged/<step>``, so the run's next save of that step is
    written rather than refused as existing, and nothing is deleted.

    Args:
      target_pytree: the abstract target (see ``restore``), or a callable
        ``metadata -> target`` for callers that build it from the saved config.
      set_aside_damaged: move the skipped steps out of the directory.

    Raises:
      FileNotFoundError: the directory holds no finished step.
      DamagedCheckpointError: no step restores; names each step's failure and the fix.
    """
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(
        f"No checkpoint found in {self.directory}: it holds no step directories. Check the "
        "workdir, or start from scratch without restoring."
      )
    failures: dict[int, DamagedCheckpointError] = {}
    for step in reversed(steps):
      try:
        target = target_pytree(self.metadata(step)) if callable(target_pytree) else target_pytree
        state, meta = self.restore(step, target_pytree=target)
      except DamagedCheckpointError as e:
        failures[step] = e
        logging.warning("%s Trying the previous checkpoint.", e)
        continue
      if failures:
        logging.warning(
          "Restored checkpoint step %d of %s instead of the damaged newer step(s) %s.",
          step,
          self.directory,
          sorted(failures),
        )
        if set_aside_damaged:
          self._set_aside(sorted(failures))
      return step, state, meta
    reasons = "; ".join(str(failures[s]) for s in sorted(failures, reverse=True))
    raise DamagedCheckpointError(
      f"No checkpoint in {self.directory} restores ({reasons}) Fix: restore the files from a "
      "copy, or move the step directories away to start the run over."
    )

  def _set_aside(self, steps: list[int]) -> None:
    """Moves step directories to ``<directory>_damaged/<step>`` and forgets them."""
    aside = self.directory.parent / f"{self.directory.name}_damaged"
    aside.mkdir(parents=True, exist_ok=True)
    for step in steps:
      dest = aside / str(step)
      n = 1
      while dest.exists():  # A step damaged again after an earlier set-aside.
        dest, n = aside / f"{step}.{n}", n + 1
      (self.directory / str(step)).rename(dest)
      logging.warning("Moved damaged checkpoint step %d to %s.", step, dest)
    self._manager.reload()

  def _check_json_files(self, step: int) -> None:
    step_dir = self.directory / str(step)
    for rel in _JSON_FILES:
      path = step_dir / rel
      try:
        json.loads(path.read_text())
      except FileNotFoundError as e:
        raise DamagedCheckpointError(
          f"Checkpoint step {step} in {self.directory} is damaged: {path} is missing."
        ) from e
      except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError included.
        raise DamagedCheckpointError(
          f"Checkpoint step {step} in {self.directory} is damaged: {path} is not readable "
          f"JSON ({e})."
        ) from e

  def metadata(self, step: int) -> dict[str, Any]:
    """The JSON metadata of checkpoint `step` alone (e.g. the config a run saved with it, to
    rebuild the state's target before restoring it).

    Raises:
      FileNotFoundError: no such finished step.
      DamagedCheckpointError: one of its JSON files is missing or unreadable.
    """
    if step not in self.all_steps():
      raise FileNotFoundError(
        f"Checkpoint step {step} does not exist in {self.directory}; "
        f"available steps: {self.all_steps()}."
      )
    self._check_json_files(step)
    restored = self._manager.restore(
      step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()})
    )
    return dict(restored[_META] or {})

  def _check_structure(self, step: int, target_pytree: Any) -> None:
    try:
      stored = self._manager.item_metadata(step)[_STATE]
    except (OSError, ValueError, KeyError) as e:
      raise _unreadable_arrays(self.directory, step, e) from e
    stored_flat = _flat_by_path(getattr(stored, "tree", stored))
    target_flat = _flat_by_path(target_pytree)
    where = f"checkpoint step {step} in {self.directory}"
    for key in target_flat:
      if key not in stored_flat:
        raise DamagedCheckpointError(
          f"The target pytree has key '{key}' that {where} lacks (stored keys include "
          f"{sorted(stored_flat)[:5]}); build the target with the same model/optimizer config "
          "as the run that saved it."
        )
    for key in stored_flat:
      if key not in target_flat:
        raise DamagedCheckpointError(
          f"{where} has key '{key}' that the target pytree lacks; build the target with the "
          "same model/optimizer config as the run that saved it."
        )
    for key, leaf in target_flat.items():
      stored_shape = tuple(getattr(stored_flat[key], "shape", ()) or ())
      if _stored_shape(leaf) != stored_shape:
        raise DamagedCheckpointError(
          f"Key '{key}' has shape {stored_shape} in {where} but {_stored_shape(leaf)} in the "
          "target pytree; use the same model config as the run that saved it."
        )

  def wait(self) -> None:
    """Blocks until any background save has finished writing.

    Raises:
      CheckpointWriteError: that save failed (e.g. a full disk); the older steps are intact.
    """
    with self._writing():
      self._manager.wait_until_finished()
    self._pending_step = None

  def close(self) -> None:
    """Waits for pending saves and releases the manager.

    Raises:
      CheckpointWriteError: a pending save failed; the manager is released all the same.
    """
    try:
      self.wait()
    finally:
      # A failed save makes the manager's own close raise it again; `wait` already did.
      with contextlib.suppress(OSError, ValueError):
        self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()


def _unreadable_arrays(directory: epath.Path, step: int, e: Exception) -> DamagedCheckpointError:
  # Tensorstore's messages run to a page of JSON spec; the head names the file and the kind.
  head = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
  return DamagedCheckpointError(
    f"Checkpoint step {step} in {directory} is damaged: the array data under "
    f"{directory / str(step) / _STATE} cannot be read ({head})."
  )


def _check_global(state_pytree: Any) -> None:
  """Orbax cannot write a device array that lives on one process only in a multi-host run."""
  for key, leaf in _flat_by_path(state_pytree).items():
    if isinstance(leaf, jax.Array) and leaf.is_fully_addressable:
      raise ValueError(
        f"State leaf '{key}' lives on this process's devices only ({leaf.sharding}), which "
        "a multi-host checkpoint cannot hold; create it on the global mesh, e.g. with "
        "jax.jit(init, out_shardings=NamedSharding(mesh, P()))."
      )


def _check_writable(directory: epath.Path) -> None:
  try:
    directory.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise PermissionError(
      f"Cannot create checkpoint directory {directory} ({e.strerror}); choose a writable workdir."
    ) from e
  if not os.access(directory, os.W_OK | os.X_OK):
    raise PermissionError(
      f"Checkpoint directory {directory} is not writable; fix its permissions or choose "
      "another workdir."
    )


class PreemptionGuard:
  """Turns SIGTERM/SIGINT into a flag so the loop can save and exit at a step boundary.

  Use as a context manager; the previous handlers are restored on exit. A second signal while
  the flag is already set raises ``KeyboardInterrupt``, so a user can still force an exit.
  Handlers can only be installed from the main thread.

  On several hosts, the signal may reach processes at different steps; decide with
  ``should_stop_any_process()`` (a collective: call it on every process at the same step) so
  that all of them save the same step.

  Attributes:
    should_stop: True once a signal arrived.
    signal_name: the name of the first signal received, or None.
  """

  def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)):
    self._signals = signals
    self._previous: dict[int, Any] = {}
    self.should_stop = False
    self.signal_name: str | None = None

  def _handle(self, signum: int, frame: types.FrameType | None) -> None:
    del frame
    if self.should_stop:
      raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: exiting without saving")
    self.should_stop = True
    self.signal_name = signal.Signals(signum).name
    logging.warning("Received %s: will save and stop at the next step boundary.", self.signal_name)

  def should_stop_any_process(self) -> bool:
    """True if any process's guard has fired (collective across processes)."""
    if jax.process_count() == 1:
      return self.should_stop
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.asarray(self.should_stop, np.int32))
    return bool(np.any(flags))

  def __enter__(self) -> PreemptionGuard:
    for sig in self._signals:
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc: object) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
