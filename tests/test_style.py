"""The tree stays clean under the project's one formatter and one linter (ruff)."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _ruff(*args):
  return subprocess.run(
    [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=120
  )


def test_ruff_lint_is_clean():
  result = _ruff("check", ".")
  assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
  result = _ruff("format", "--check", ".")
  assert result.returncode == 0, result.stdout + result.stderr
