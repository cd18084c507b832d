"""compile_check: AOT compile of the quickstart for a 4-chip v5e slice, on this CPU.

Runs the CLI in a subprocess (libtpu must not meet the conftest's 8 fake CPU devices,
and its TPU topology client is process-global). Needs the `libtpu` wheel, which the
`test` extra installs.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jaxrl_verify import compile_check

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
  "accelerator, topology",
  [
    ("v5p-8", "v5p:2x2x1"),
    ("v5p-16", "v5p:2x2x2"),
    ("v5p-64", "v5p:2x4x4"),
    ("v5litepod-16", "v5e:4x4"),
    ("v6e-8", "v6e:2x4"),
    ("v4-32", "v4:2x2x4"),
    ("v5e:2x2", "v5e:2x2"),
  ],
)
def test_topology_name(accelerator, topology):
  assert compile_check.topology_name(accelerator) == topology


@pytest.mark.parametrize("bad", ["v5p", "v9-8", "v5p-48"])
def test_topology_name_rejects(bad):
  with pytest.raises(ValueError, match="topology"):
    compile_check.topology_name(bad)


def test_quickstart_compiles_for_v5e_2x2():
  env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
  env["JAX_PLATFORMS"] = "cpu"
  out = subprocess.run(
    [sys.executable, "-m", "jaxrl_verify.compile_check"]
    + ["--config=configs/quickstart.py:runlocal", "--topology=v5e-4"],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert "4 x TPU v5 lite" in out.stdout, out.stdout
  lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
  for program in ("sample", "train_step"):
    assert lines[program].endswith("fits"), out.stdout
    total = re.findall(r"([\d.]+) (MiB|GiB)", lines[program])[-2]  # total, then the HBM.
    assert float(total[0]) > 0 and total[1] == "MiB", lines[program]
  assert "/ 16.00 GiB" in lines["train_step"]
