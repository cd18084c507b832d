"""Damaged checkpoints: each kind of damage is named (step and file), and the newest intact
step is restored instead, with the damaged one set aside rather than deleted."""

import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_verify.checkpoint import Checkpointer, DamagedCheckpointError


def _files(step_dir, pattern="**/*"):
  return [p for p in step_dir.glob(pattern) if p.is_file()]


def _truncate(path, frac=0.5):
  with open(path, "r+b") as f:
    f.truncate(int(os.path.getsize(path) * frac))


def _flip_second_half(path):
  data = bytearray(path.read_bytes())
  for i in range(len(data) // 2, len(data)):
    data[i] ^= 0xFF
  path.write_bytes(bytes(data))


# Each: (how the newest step's files are damaged, a phrase the explicit restore must name).
DAMAGE = {
  "every_file_truncated": (lambda d: [_truncate(p) for p in _files(d)], "_CHECKPOINT_METADATA"),
  "meta_json_empty": (lambda d: _truncate(d / "meta" / "metadata", 0.0), "meta/metadata"),
  "tree_metadata_missing": (lambda d: (d / "state" / "_METADATA").unlink(), "_METADATA is missing"),
  "array_files_missing": (
    lambda d: [p.unlink() for p in _files(d / "state", "**/d/*")],
    "array data",
  ),
  "array_files_corrupted": (
    lambda d: [_flip_second_half(p) for p in _files(d / "state", "**/d/*")],
    "array data",
  ),
  "manifests_truncated": (
    lambda d: [_truncate(p) for p in _files(d / "state", "**/manifest.ocdbt")],
    "array data",
  ),
  "state_dir_missing": (lambda d: shutil.rmtree(d / "state"), "'state' directory is missing"),
  "unreadable_file": (
    lambda d: (d / "meta" / "metadata").write_bytes(b"\xff\xfe{"),
    "meta/metadata",
  ),
}

TARGET = {
  "w": jax.ShapeDtypeStruct((16, 8), jnp.float32),
  "b": jax.ShapeDtypeStruct((5,), jnp.int32),
}


def _state(step):
  rng = np.random.default_rng(step)
  return {
    "w": jnp.asarray(rng.standard_normal((16, 8)), jnp.float32),
    "b": jnp.arange(5, dtype=jnp.int32) * step,
  }


def _two_steps(directory, newest_state=None):
  with Checkpointer(directory, async_save=False) as ckpt:
    ckpt.save(2, _state(2), {"data": 2})
    ckpt.save(4, _state(4) if newest_state is None else newest_state, {"data": 4})


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_newest_step_falls_back_to_the_intact_one(tmp_path, kind, caplog):
  directory = tmp_path / "checkpoints"
  _two_steps(directory)
  damage, named = DAMAGE[kind]
  damage(directory / "4")

  ckpt = Checkpointer(directory, async_save=False)
  with pytest.raises(DamagedCheckpointError, match="step 4|/4 is not") as err:
    ckpt.restore(4, target_pytree=TARGET)
  assert named in str(err.value)

  with caplog.at_level(logging.WARNING):
    step, state, meta = ckpt.restore_latest(TARGET, set_aside_damaged=True)
  assert step == 2 and meta == {"data": 2}
  np.testing.assert_array_equal(np.asarray(state["w"]), np.asarray(_state(2)["w"]))
  assert "damaged newer step(s) [4]" in caplog.text

  # Set aside, not deleted; the run's next save of step 4 is written again.
  assert (tmp_path / "checkpoints_damaged" / "4").is_dir()
  assert ckpt.all_steps() == [2]
  assert ckpt.save(4, _state(4), {"data": 4})
  ckpt.close()
  step, state, _ = Checkpointer(directory).restore_latest(TARGET)
  assert step == 4
  np.testing.assert_array_equal(np.asarray(state["b"]), np.asarray(_state(4)["b"]))


def test_newest_step_with_other_shapes_falls_back(tmp_path):
  directory = tmp_path / "checkpoints"
  _two_steps(directory, newest_state={"w": jnp.zeros((16, 9)), "b": jnp.zeros(5, jnp.int32)})
  ckpt = Checkpointer(directory, async_save=False)
  with pytest.raises(DamagedCheckpointError, match=r"Key 'w' has shape \(16, 9\).*step 4"):
    ckpt.restore(4, target_pytree=TARGET)
  step, _, _ = ckpt.restore_latest(TARGET)
  assert step == 2
  assert ckpt.all_steps() == [2, 4]  # Without set_aside_damaged nothing moves.
  ckpt.close()


def test_no_intact_step_stops_with_every_reason_and_the_fix(tmp_path):
  directory = tmp_path / "checkpoints"
  _two_steps(directory)
  for step in (2, 4):
    _truncate(directory / str(step) / "meta" / "metadata", 0.0)
  ckpt = Checkpointer(directory, async_save=False)
  with pytest.raises(DamagedCheckpointError) as err:
    ckpt.restore_latest(TARGET, set_aside_damaged=True)
  message = str(err.value)
  assert "No checkpoint in" in message and "step 4" in message and "step 2" in message
  assert "move the step directories away" in message
  assert ckpt.all_steps() == [2, 4]  # Nothing was moved when nothing could be restored.
  ckpt.close()
