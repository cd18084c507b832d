"""A checkpoint save that runs out of disk stops with one clear error, and the previous
checkpoint stays intact and restorable.

The full disk is the file-size limit (RLIMIT_FSIZE: a write past it fails with EFBIG, as one
on a full filesystem fails with ENOSPC), set in a child process so the test runner keeps
its own limits, and with no privileges needed.
"""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_verify.checkpoint import Checkpointer

CHILD = textwrap.dedent(
  """
  import resource, signal, sys
  import jax.numpy as jnp, numpy as np
  from jaxrl_verify.checkpoint import Checkpointer, CheckpointWriteError

  directory, async_save = sys.argv[1], sys.argv[2] == "async"
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Fail the write (EFBIG), don't kill.
  small = {"w": jnp.arange(64, dtype=jnp.float32)}
  big = {"w": jnp.asarray(np.random.default_rng(0).standard_normal(500_000), jnp.float32)}
  ckpt = Checkpointer(directory, async_save=async_save)
  ckpt.save(2, small, {"step": 2})
  ckpt.wait()
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
  try:
    ckpt.save(4, big, {"step": 4})
    ckpt.wait()
  except CheckpointWriteError as e:
    print("ERROR:", e)
  else:
    print("NO ERROR")
  resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # Space freed: saving works again.
  print("STEPS:", ckpt.all_steps())
  ckpt.save(6, small, {"step": 6})
  ckpt.close()
  print("AFTER:", Checkpointer(directory).all_steps())
  """
)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_full_disk_during_save_keeps_the_previous_checkpoint(tmp_path, mode):
  directory = tmp_path / "checkpoints"
  out = subprocess.run(
    [sys.executable, "-c", CHILD, str(directory), mode],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  lines = {
    line.split(":", 1)[0]: line.split(":", 1)[1].strip()
    for line in out.stdout.splitlines()
    if ":" in line
  }
  message = lines["ERROR"]
  assert message.startswith(f"Could not write checkpoint step 4 to {directory}: the disk is full")
  assert "previous checkpoint (step 2) is intact" in message and "rerun the same command" in message
  assert lines["STEPS"] == "[2]"
  assert lines["AFTER"] == "[2, 6]"
  assert sorted(p.name for p in directory.iterdir()) == ["2", "6"]  # No partial step 4 left.

  state, meta = Checkpointer(directory).restore(
    2, target_pytree={"w": jax.ShapeDtypeStruct((64,), jnp.float32)}
  )
  np.testing.assert_array_equal(np.asarray(state["w"]), np.arange(64, dtype=np.float32))
  assert meta == {"step": 2}
