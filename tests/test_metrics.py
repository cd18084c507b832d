"""MetricsWriter sinks (JSONL, real TensorBoard event files, console), plotting, periodic."""

import io
import json
import math
import os
import select
import struct
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2

from jaxrl_verify import plot
from jaxrl_verify.metrics import MetricsWriter, read_metrics
from jaxrl_verify.periodic import every


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _read_events(tb_dir) -> list:
  """Parses TFRecord framing (len, masked crc(len), data, masked crc(data)) into Events."""
  events = []
  for name in sorted(os.listdir(tb_dir)):
    with open(os.path.join(tb_dir, name), "rb") as f:
      buf = f.read()
    pos = 0
    while pos < len(buf):
      header = buf[pos : pos + 8]
      (length,) = struct.unpack("<Q", header)
      (len_crc,) = struct.unpack("<I", buf[pos + 8 : pos + 12])
      assert len_crc == _masked_crc(header)
      data = buf[pos + 12 : pos + 12 + length]
      (data_crc,) = struct.unpack("<I", buf[pos + 12 + length : pos + 16 + length])
      assert data_crc == _masked_crc(data)
      events.append(event_pb2.Event.FromString(data))
      pos += 16 + length
  return events


def _scalars(events) -> dict:
  return {(v.tag, e.step): v.simple_value for e in events for v in e.summary.value}


def test_crc32c_matches_the_standard_check_value():
  # The CRC-32C (Castagnoli) check value of b"123456789" (RFC 3720, appendix B.4).
  assert crc32c(b"123456789") == 0xE3069283


def test_jsonl_and_tensorboard_round_trip(tmp_path):
  stream = io.StringIO()
  with MetricsWriter(tmp_path, total_steps=4, stream=stream) as writer:
    writer.write(1, {"reward/mean": np.float32(0.25), "accuracy": jnp.asarray(0.5), "kl": 0})
    writer.write(2, {"reward/mean": jnp.bfloat16(0.75), "loss": float("nan")})
    writer.write(3, {"loss": np.float64(-np.inf), "n": np.int64(7), "ok": True})
  records = read_metrics(tmp_path)
  assert records[0] == {"step": 1, "reward/mean": 0.25, "accuracy": 0.5, "kl": 0.0}
  assert records[1]["reward/mean"] == 0.75 and math.isnan(records[1]["loss"])
  assert records[2] == {"step": 3, "loss": -math.inf, "n": 7.0, "ok": 1.0}
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert json.loads(lines[1])["loss"] == "NaN"  # strict JSON: non-finite values are strings
  assert json.loads(lines[2])["loss"] == "-Infinity"

  scalars = _scalars(_read_events(tmp_path / "tb"))
  assert scalars[("reward/mean", 1)] == pytest.approx(0.25)
  assert scalars[("reward/mean", 2)] == pytest.approx(0.75)
  assert scalars[("n", 3)] == 7.0 and math.isnan(scalars[("loss", 2)])
  assert len(scalars) == 8


def test_console_plain_stream_prints_one_line_per_write(tmp_path):
  stream = io.StringIO()
  with MetricsWriter(tmp_path, total_steps=10, stream=stream) as writer:
    for step in (1, 2, 3):
      writer.write(step, {"reward/mean": 0.5, "kl": 0.01, "other": 1.0})
  lines = stream.getvalue().splitlines()
  assert len(lines) == 3 and "\r" not in stream.getvalue()
  assert lines[0].startswith("step 1/10 | reward/mean 0.5 | kl 0.01")
  assert lines[2].startswith("step 3/10 | ") and "s/step | ETA " in lines[2]
  assert "other" not in lines[2]


def test_console_tty_redraws_in_place(tmp_path):
  master, slave = os.openpty()
  with os.fdopen(slave, "w") as tty, MetricsWriter(tmp_path, total_steps=5, stream=tty) as writer:
    for step in (1, 2):
      writer.write(step, {"accuracy": 0.5})
    tty.flush()
    shown = b""
    while b"step 2/5" not in shown:  # A pty may hand the bytes over in pieces.
      ready, _, _ = select.select([master], [], [], 10.0)
      assert ready, f"the console line never arrived: {shown!r}"
      shown += os.read(master, 4096)
    assert shown.count(b"\r") == 2 and b"\n" not in shown
  os.close(master)


def test_non_main_process_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  stream = io.StringIO()
  with MetricsWriter(workdir, is_main_process=False, stream=stream) as writer:
    writer.write(1, {"reward/mean": 1.0})
  assert not workdir.exists() and stream.getvalue() == ""


def test_resume_drops_records_after_the_checkpoint(tmp_path):
  with MetricsWriter(tmp_path, console=False) as writer:
    for step in range(1, 6):
      writer.write(step, {"x": step})
  with MetricsWriter(tmp_path, console=False, resume_step=3) as writer:
    writer.write(4, {"x": 40})
  assert [(r["step"], r["x"]) for r in read_metrics(tmp_path)] == [(1, 1), (2, 2), (3, 3), (4, 40)]
  # TensorBoard hides the interrupted run's steps >= 4 by a purge event at step 4.
  events = _read_events(tmp_path / "tb")
  assert any(e.step == 4 and e.HasField("session_log") for e in events)


def test_errors_are_clear(tmp_path):
  with MetricsWriter(tmp_path, console=False) as writer:
    with pytest.raises(ValueError, match="Metric 'v' has shape \\(3,\\)"):
      writer.write(1, {"v": np.ones(3)})
    with pytest.raises(ValueError, match="Metric 's' is the string"):
      writer.write(1, {"s": "high"})
    with pytest.raises(ValueError, match="'step' is reserved"):
      writer.write(1, {"step": 1})
  with pytest.raises(FileNotFoundError, match="No metrics.jsonl"):
    read_metrics(tmp_path / "nowhere")
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "x": 1.0}\n{"step": 2, "x"')  # killed mid-write
  assert read_metrics(tmp_path) == [{"step": 1, "x": 1.0}]
  path.write_text('{"step": 1, "x": 1.0\n{"step": 2, "x": 2.0}\n')
  with pytest.raises(ValueError, match="metrics.jsonl:1 is not valid JSON"):
    read_metrics(tmp_path)


def test_plot_reward_curve_writes_a_png(tmp_path):
  rng = np.random.default_rng(0)
  with MetricsWriter(tmp_path, total_steps=30, console=False) as writer:
    for step in range(1, 31):
      metrics = {"reward/mean": step / 30 + 0.1 * rng.standard_normal(), "accuracy": step / 40}
      if step % 10 == 0:
        metrics["eval/accuracy"] = step / 35
      writer.write(step, metrics)
  assert plot.main([str(tmp_path)]) == 0
  png = (tmp_path / "reward_curve.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
  assert struct.unpack(">II", png[16:24]) == (800, 450)
  assert png[-8:-4] == b"IEND"


def test_plot_cli_without_metrics_fails_clearly(tmp_path):
  proc = subprocess.run(
    [sys.executable, "-m", "jaxrl_verify.plot", str(tmp_path)], capture_output=True, text=True
  )
  assert proc.returncode == 2
  assert "error: No metrics.jsonl in" in proc.stderr and "Traceback" not in proc.stderr
  (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
  with pytest.raises(ValueError, match="has none of"):
    plot.plot_reward_curve(tmp_path)


def test_ema_smooth_matches_closed_form():
  x = np.random.default_rng(1).standard_normal(12)
  w = 0.8
  i, j = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
  weights_ij = np.where(j <= i, (1 - w) * w ** (i - j).clip(0), 0.0)
  want = weights_ij @ x / (1 - w ** (np.arange(12) + 1))
  np.testing.assert_allclose(plot.ema_smooth(x, w), want, rtol=1e-12)
  np.testing.assert_allclose(plot.ema_smooth([3.0] * 5, 0.9), 3.0, rtol=1e-12)


@pytest.mark.parametrize(
  "step, period, kwargs, want",
  [
    (100, 100, {}, True),
    (101, 100, {}, False),
    (1, 100, {}, False),
    (1, 100, {"first": True}, True),
    (250, 100, {"total_steps": 250}, True),
    (250, 100, {"total_steps": 250, "last": False}, False),
    (249, 100, {"total_steps": 250}, False),
    (100, None, {"total_steps": 100, "first": True}, False),
    (100, 0, {"total_steps": 100}, False),
    (7, 1, {}, True),
  ],
)
def test_every(step, period, kwargs, want):
  assert every(step, period, **kwargs) is want


def test_every_rejects_negative_period():
  with pytest.raises(ValueError, match="use 0 to disable"):
    every(3, -1)
