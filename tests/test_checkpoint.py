"""Checkpointer round-trips (sharded, async, keep-N, resume), its errors, and PreemptionGuard."""

import os
import pathlib
import signal
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl_verify.checkpoint import Checkpointer, DamagedCheckpointError, PreemptionGuard


def _mesh():
  # Auto axes: plain device_put placement is all this test needs, no sharding-in-types.
  return jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)


def _state(seed: int):
  """A small RL-like state: sharded params, adam state, typed and raw keys, a step counter."""
  rng = np.random.default_rng(seed)
  w_dv = jax.device_put(
    jnp.asarray(rng.standard_normal((8, 16)), jnp.float32),
    NamedSharding(_mesh(), P("data", "fsdp")),
  )
  params = {"w_dv": w_dv, "b_v": jnp.asarray(rng.standard_normal(16), jnp.bfloat16)}
  opt_state = optax.adam(1e-3).init(params)
  return {
    "params": params,
    "opt_state": opt_state,
    "rng": jax.random.key(seed),
    "raw_rng": jax.random.PRNGKey(seed + 1),
    "step": np.int32(seed),
  }


def _abstract(tree):
  return jax.tree.map(
    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=getattr(a, "sharding", None)), tree
  )


def _assert_bit_equal(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == w.dtype
    if jax.dtypes.issubdtype(w.dtype, jax.dtypes.prng_key):
      g, w = jax.random.key_data(g), jax.random.key_data(w)
    assert np.shape(g) == np.shape(w)
    assert np.asarray(g).tobytes() == np.asarray(w).tobytes()


def test_async_save_restores_bit_equal_with_sharding(tmp_path):
  state = _state(3)
  meta = {"data_position": 17, "policy_version": 2, "config": {"lr": 1e-3, "name": "x"}}
  live = jax.tree.map(jnp.copy, state)
  with Checkpointer(tmp_path / "ckpt", async_save=True) as ckpt:
    assert ckpt.latest_step() is None
    assert ckpt.save(5, live, meta)
    # The next jitted update donates the state's buffers: once save returns they may go.
    jax.tree.map(lambda a: a.delete(), live)
    ckpt.wait()
    got, got_meta = ckpt.restore(target_pytree=_abstract(state))
  _assert_bit_equal(got, state)
  assert got_meta == meta
  w = got["params"]["w_dv"]
  assert w.sharding == state["params"]["w_dv"].sharding
  assert len(w.addressable_shards) == 8 and w.addressable_shards[0].data.shape == (4, 4)


def test_keep_n_and_resume_picks_latest(tmp_path):
  with Checkpointer(tmp_path, max_to_keep=2, async_save=True) as ckpt:
    for step in (1, 2, 3, 4):
      ckpt.save(step, _state(step), {"step": step})
    assert not ckpt.save(4, _state(9), {"step": 9}), "an existing step must not be overwritten"
  resumed = Checkpointer(tmp_path, max_to_keep=2)
  assert resumed.all_steps() == [3, 4]
  assert resumed.latest_step() == 4
  got, meta = resumed.restore(target_pytree=_abstract(_state(0)))
  _assert_bit_equal(got, _state(4))
  assert meta == {"step": 4}
  older, _ = resumed.restore(3, target_pytree=_abstract(_state(0)))
  _assert_bit_equal(older, _state(3))
  resumed.close()


def test_interval_skips_unless_forced(tmp_path):
  with Checkpointer(tmp_path, save_interval_steps=10, async_save=False) as ckpt:
    assert ckpt.save(10, {"x": np.ones(2)}, {})
    assert not ckpt.save(13, {"x": np.ones(2)}, {})
    assert ckpt.save(13, {"x": np.ones(2)}, {}, force=True)
    assert ckpt.save(20, {"x": np.ones(2)}, {})
    assert ckpt.all_steps() == [10, 13, 20]


def test_errors_are_one_clear_sentence(tmp_path):
  (tmp_path / "notes.txt").write_text("not a checkpoint")
  ckpt = Checkpointer(tmp_path, async_save=False)
  with pytest.raises(FileNotFoundError, match="No checkpoint found"):
    ckpt.restore(target_pytree={"x": jax.ShapeDtypeStruct((2,), jnp.float32)})
  ckpt.save(1, {"x": np.ones(2, np.float32), "y": np.zeros(3, np.float32)}, {})
  with pytest.raises(FileNotFoundError, match=r"step 7 does not exist.*\[1\]"):
    ckpt.restore(7, target_pytree={"x": jax.ShapeDtypeStruct((2,), jnp.float32)})
  target = {
    "x": jax.ShapeDtypeStruct((2,), jnp.float32),
    "z": jax.ShapeDtypeStruct((3,), jnp.float32),
  }
  with pytest.raises(ValueError, match="key 'z'"):
    ckpt.restore(target_pytree=target)
  with pytest.raises(ValueError, match="has key 'y' that the target pytree lacks"):
    ckpt.restore(target_pytree={"x": jax.ShapeDtypeStruct((2,), jnp.float32)})
  target = {
    "x": jax.ShapeDtypeStruct((4,), jnp.float32),
    "y": jax.ShapeDtypeStruct((3,), jnp.float32),
  }
  with pytest.raises(ValueError, match=r"Key 'x' has shape \(2,\)"):
    ckpt.restore(target_pytree=target)
  with pytest.raises(ValueError, match="not JSON-serialisable"):
    ckpt.save(2, {"x": np.ones(2)}, {"position": object()})
  (tmp_path / "9").mkdir()  # a stray step-like directory without items
  with pytest.raises(DamagedCheckpointError, match="'state' directory is missing"):
    Checkpointer(tmp_path).restore(9, target_pytree={"x": jax.ShapeDtypeStruct((2,), jnp.float32)})
  ckpt.close()


def test_unwritable_directory(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(PermissionError, match="Cannot create checkpoint directory"):
    Checkpointer(blocker / "ckpt")


def test_preemption_guard_sets_flag_and_restores_handlers():
  before = signal.getsignal(signal.SIGTERM)
  with PreemptionGuard() as guard:
    assert not guard.should_stop
    os.kill(os.getpid(), signal.SIGTERM)
    # The handler runs on the main thread at the next bytecode boundary; a syscall suffices.
    signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert guard.should_stop and guard.signal_name == "SIGTERM"
    assert guard.should_stop_any_process()
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      signal.pthread_sigmask(signal.SIG_BLOCK, [])
  assert signal.getsignal(signal.SIGTERM) is before


_TWO_PROCESS_WORKER = """
import os, sys
process_id, port, directory = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from jaxrl_verify.checkpoint import Checkpointer

mesh = jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
sharded, replicated = NamedSharding(mesh, P("data", "fsdp")), NamedSharding(mesh, P())
full_dv = np.arange(8 * 16, dtype=np.float32).reshape(8, 16)
state = {
  "w_dv": jax.make_array_from_callback(full_dv.shape, sharded, lambda idx: full_dv[idx]),
  "rng": jax.jit(lambda: jax.random.key(7), out_shardings=replicated)(),
}
ckpt = Checkpointer(directory)
try:
  ckpt.save(1, {"rng": jax.random.key(7)}, {})
  raise AssertionError("a host-local leaf must be rejected")
except ValueError as e:
  assert "State leaf 'rng' lives on this process's devices only" in str(e), e
ckpt.save(3, state, {"position": 11})
ckpt.wait()
target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state)
got, meta = ckpt.restore(target_pytree=target)
assert got["w_dv"].sharding == sharded and meta == {"position": 11}
for shard in got["w_dv"].addressable_shards:
  np.testing.assert_array_equal(np.asarray(shard.data), full_dv[shard.index])
assert len(got["w_dv"].addressable_shards) == 4
np.testing.assert_array_equal(jax.random.key_data(got["rng"]).addressable_data(0), [0, 7])
ckpt.close()
print("restored", process_id)
"""


def test_two_processes_save_and_restore_a_global_sharded_state(tmp_path):
  script = tmp_path / "worker.py"
  script.write_text(_TWO_PROCESS_WORKER)
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[1]))
  procs = [
    subprocess.Popen(
      [sys.executable, str(script), str(i), str(port), str(tmp_path / "ckpt")],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  outputs = [p.communicate(timeout=120)[0] for p in procs]
  for i, (p, out) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0 and f"restored {i}" in out, out[-3000:]
  assert Checkpointer(tmp_path / "ckpt").all_steps() == [3]


def test_nnx_model_and_optimizer_state_round_trip(tmp_path):
  def make(seed):
    model = nnx.Sequential(
      nnx.Linear(3, 4, rngs=nnx.Rngs(seed)), nnx.Linear(4, 2, rngs=nnx.Rngs(seed))
    )
    return model, nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)

  _, state = nnx.split(make(0))
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(1, state, {"policy_version": 1})
    ckpt.wait()
    abstract = jax.eval_shape(lambda: nnx.split(make(1))[1])
    got, _ = ckpt.restore(target_pytree=abstract)
    _assert_bit_equal(got, state)
    params_only = jax.eval_shape(lambda: nnx.split(make(1)[0])[1])
    with pytest.raises(
      ValueError, match=r"target pytree has key '\S+/bias/value' that checkpoint step 1"
    ):
      ckpt.restore(target_pytree=params_only)
