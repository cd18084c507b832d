"""Every notebook in colabs/ runs top to bottom (at `:runlocal` size), so none can rot.

Executed with nbclient in a fresh `python3` kernel of this interpreter. The install cell
sees `JAXRL_VERIFY_REPO` (this checkout) and skips the clone and the pip install.
"""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "colabs").glob("*.ipynb"))


def test_the_notebooks_are_there():
  assert {p.name for p in NOTEBOOKS} >= {
    "quickstart.ipynb",
    "verifiers.ipynb",
    "process_supervision.ipynb",
  }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path):
  nb = nbformat.read(path, as_version=4)
  assert "JAXRL_VERIFY_REPO" in nb.cells[1].source  # The first code cell installs.
  env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
  env.update(
    JAX_PLATFORMS="cpu",  # One CPU device, as on a free Colab runtime.
    JAXRL_VERIFY_REPO=str(REPO),
    QUICKSTART_WORKDIR=str(tmp_path / "workdir"),
    PROCESS_WORKDIR=str(tmp_path / "workdir"),
    MPLBACKEND="Agg",
    PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
  )
  client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {}})
  client.execute(env=env, cwd=str(tmp_path))
  outputs = "".join(
    o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
  )
  if path.name == "quickstart.ipynb":
    assert (tmp_path / "workdir" / "metrics.jsonl").exists()
    assert "VERDICT" in outputs
  if path.name == "process_supervision.ipynb":
    report = json.loads((tmp_path / "workdir" / "report.json").read_text())
    assert set(report["best_of_n"]) >= {"prm_min", "orm", "majority", "oracle"}
    assert "checker  MC soft (N=8)  PRM" in outputs and "BAD" in outputs
  if path.name == "verifiers.ipynb":
    assert "MISS" not in outputs and "timeout" in outputs
