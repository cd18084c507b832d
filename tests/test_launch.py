"""launch/ scripts: syntax, usage errors and the commands their dry runs would execute.

Nothing here touches a cloud endpoint: `--dry-run` prints the gcloud/srun/ssh commands.
`multiprocess_cpu.sh` runs for real in tests/test_multiprocess.py.
"""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "launch").glob("*.sh"))


def _run(*args, env=None) -> subprocess.CompletedProcess:
  return subprocess.run(
    ["bash", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
  )


def test_every_script_parses_and_is_documented():
  assert {p.name for p in SCRIPTS} >= {
    "local.sh",
    "multiprocess_cpu.sh",
    "tpu_pod.sh",
    "gpu_multinode.sh",
  }
  readme = (REPO / "launch" / "README.md").read_text()
  for script in SCRIPTS:
    assert _run("-n", script).returncode == 0, script
    assert script.name in readme


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_usage_error_without_arguments(script):
  out = _run(script)
  assert out.returncode == 2 and "usage" in out.stderr


def test_local_dry_run():
  out = _run("launch/local.sh", "--dry-run", "configs/quickstart.py:runlocal", "/tmp/w", "--x=1")
  assert out.returncode == 0, out.stderr
  assert out.stdout.split()[1:] == [
    "-m",
    "jaxrl_verify.train",
    "--config=configs/quickstart.py:runlocal",
    "--workdir=/tmp/w",
    "--x=1",
  ]


def test_multiprocess_cpu_dry_run():
  out = _run("launch/multiprocess_cpu.sh", "--dry-run", "3", "configs/quickstart.py", "--y=2")
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 3
  ports = {w for line in lines for w in line.split() if w.startswith("--coordinator_address=")}
  assert len(ports) == 1  # One coordinator for all.
  for i, line in enumerate(lines):
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=2" in line
    assert f"--num_processes=3 --process_id={i}" in line and line.endswith("--y=2")


def test_tpu_pod_dry_run_up_on_a_spot_slice():
  out = _run(
    "launch/tpu_pod.sh",
    "--dry-run",
    "up",
    "--name=rl",
    "--zone=us-east5-a",
    "--accelerator=v5p-64",
    "--spot",
    "--config=configs/ppo_math_qwen2p5_7b_v5p.py",
    "--workdir=gs://bucket/run",
    "--",
    "--config.total_steps=3",
  )
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().splitlines()
  create, archive, scp, install, train, logs = lines
  assert create.startswith("gcloud compute tpus tpu-vm create rl --zone=us-east5-a")
  assert "--accelerator-type=v5p-64" in create and create.endswith("--spot")
  assert "git" in archive and "archive" in archive
  assert scp.startswith("gcloud compute tpus tpu-vm scp") and "--worker=all" in scp
  assert "--worker=all" in install and "pip install" in install and "[tpu]" in install
  assert "--worker=all" in train
  assert "jaxrl_verify.train --config=configs/ppo_math_qwen2p5_7b_v5p.py" in train
  # The bucket is mounted on every worker (GCS objects cannot be appended to).
  assert "gcsfuse --implicit-dirs bucket ~/gcs/bucket" in train
  assert "--workdir=$HOME/gcs/bucket/run --config.total_steps=3" in train
  assert "--worker=0" in logs and "train.log" in logs


def test_tpu_pod_dry_run_delete_and_bad_command():
  out = _run("launch/tpu_pod.sh", "--dry-run", "delete", "--name=rl", "--zone=z")
  assert out.stdout.strip() == "gcloud compute tpus tpu-vm delete rl --zone=z --quiet"
  assert _run("launch/tpu_pod.sh", "--dry-run", "explode", "--name=rl", "--zone=z").returncode == 2
  run = _run("launch/tpu_pod.sh", "--dry-run", "run", "--name=rl", "--zone=z")
  assert run.returncode == 2 and "--workdir" in run.stderr


def test_gpu_multinode_dry_runs():
  slurm = _run("launch/gpu_multinode.sh", "--dry-run", "slurm", "configs/q.py", "/shared/w")
  assert slurm.returncode == 0, slurm.stderr
  assert slurm.stdout.startswith("srun ") and "--ntasks-per-node=1" in slurm.stdout
  assert "--process_id=$SLURM_PROCID" in slurm.stdout
  env = {"HOSTS": "gpu0,gpu1", "PORT": "4321", "PATH": "/usr/bin:/bin"}
  ssh = _run("launch/gpu_multinode.sh", "--dry-run", "ssh", "configs/q.py", "/nfs/w", env=env)
  assert ssh.returncode == 0, ssh.stderr
  lines = ssh.stdout.strip().splitlines()
  assert [line.split()[1] for line in lines] == ["gpu0", "gpu1"]
  for i, line in enumerate(lines):
    assert f"--coordinator_address=gpu0:4321 --num_processes=2 --process_id={i}" in line
