"""Tests for `python -m jaxrl_verify.score`: one verdict line per input line, never a crash."""

import json
import os
import pathlib
import subprocess
import sys

from jaxrl_verify import score

_REPO = pathlib.Path(__file__).resolve().parents[1]
PUBLIC = _REPO / "tests" / "data" / "math_public.jsonl"
sys.path.insert(0, str(_REPO / "tests"))


def test_cli_scores_public_cases_and_reports_malformed_lines(tmp_path):
  cases = [json.loads(line) for line in PUBLIC.read_text().splitlines() if line.strip()]
  lines = [json.dumps(c) for c in cases]
  bad = {
    len(lines) + 1: '{"completion": "\\\\boxed{1}"',  # truncated JSON
    len(lines) + 2: "[1, 2]",
    len(lines) + 3: '{"reference": "1"}',
    len(lines) + 4: "",
  }
  lines += list(bad.values())
  lines.append(json.dumps({"completion": r"\boxed{2}", "reference": "2", "task_id": 7}))
  src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  src.write_text("\n".join(lines) + "\n")
  proc = subprocess.run(
      [sys.executable, "-m", "jaxrl_verify.score", "--verifier=math", "--input", str(src),
       "--output", str(dst), "--workers", "2", "--timeout", "5"],
      capture_output=True, text=True, cwd=_REPO, timeout=120, check=False,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr
  rows = [json.loads(line) for line in dst.read_text().splitlines()]
  assert len(rows) == len(lines)
  for case, row in zip(cases, rows):
    assert row["completion"] == case["completion"] and row["why"] == case["why"]
    assert (row["status"] == "ok") == case["expect_correct"], row
    assert row["reward"] == (1.0 if row["status"] == "ok" else 0.0)
    assert row["latency_s"] >= 0 and row["reason"]
  for line_no in bad:
    row = rows[line_no - 1]
    assert row["status"] == "invalid" and f"line {line_no}" in row["reason"], row
  assert rows[-1]["status"] == "ok" and rows[-1]["task_id"] == 7
  summary = json.loads(proc.stderr.strip().splitlines()[-1])
  n_ok = sum(c["expect_correct"] for c in cases) + 1
  assert summary["items"] == len(lines) and summary["status_ok"] == n_ok
  assert summary["status_invalid"] >= len(bad) and summary["throughput_per_s"] > 0


def test_fields_and_timeout_reach_the_verifier(tmp_path):
  src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  rows_in = [
    {"completion": "a", "reference": "a", "tag": "first"},
    {"completion": "a", "reference": "b", "tag": "second"},
  ]
  src.write_text("".join(json.dumps(r) + "\n" for r in rows_in))
  argv = ["--verifier=test_echo", f"--input={src}", f"--output={dst}", "--workers=1"]
  assert score.main([*argv, "--imports=pool_fault_verifiers"]) == 0
  rows = [json.loads(line) for line in dst.read_text().splitlines()]
  assert [(r["status"], r["reason"]) for r in rows] == [("ok", "first"), ("wrong", "second")]

  src.write_text(json.dumps({"completion": "30", "reference": ""}) + "\n")
  argv = ["--verifier=test_sleep", f"--input={src}", f"--output={dst}", "--timeout=0.3"]
  assert score.main([*argv, "--imports=pool_fault_verifiers"]) == 0
  (row,) = [json.loads(line) for line in dst.read_text().splitlines()]
  assert row["status"] == "timeout" and "0.3 s" in row["reason"]


def test_bad_arguments_fail_with_one_clear_sentence(tmp_path, capsys):
  out = str(tmp_path / "out.jsonl")
  assert score.main(["--verifier=nope", f"--input={os.devnull}", f"--output={out}"]) == 2
  assert "Unknown --verifier='nope'" in capsys.readouterr().err
  missing = tmp_path / "missing.jsonl"
  assert score.main(["--verifier=math", f"--input={missing}", f"--output={out}"]) == 2
  assert f"--input {missing} does not exist" in capsys.readouterr().err
  assert score.DEFAULT_TIMEOUT_S["code"] >= 30


def test_code_verifier_lines_need_no_reference(tmp_path):
  """The three code-test formats of issue 5, with hidden tests, scored in the sandbox."""
  src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  add = "```python\ndef add(a, b):\n    return a + b\n```"
  rows_in = [
    {
      "completion": add,
      "tests": ["assert add(1, 2) == 3"],
      "hidden_tests": ["assert add(2, 5) == 7"],
    },
    {
      "completion": "def add(a, b):\n    import sys; sys.exit(0)",
      "tests": ["assert add(1, 2) == 3"],
    },
    {"completion": "print(int(input()) * 2)", "io": [{"input": "3\n", "output": "6\n"}]},
    {
      "completion": "def f(x):\n    return x + 1",
      "entry_point": "f",
      "check": "def check(candidate):\n    assert candidate(1) == 2\n",
    },
  ]
  src.write_text("".join(json.dumps(r) + "\n" for r in rows_in))
  assert score.main(["--verifier=code", f"--input={src}", f"--output={dst}", "--workers=2"]) == 0
  rows = [json.loads(line) for line in dst.read_text().splitlines()]
  assert [r["status"] for r in rows] == ["ok", "wrong", "ok", "ok"]
  assert rows[0]["hidden_reward"] == 1.0
  assert rows[1]["reward"] == 0.0 and rows[1]["reason"].startswith("exits-early")


def test_invalid_utf8_line_is_a_verdict_and_the_input_is_never_the_output(tmp_path, capsys):
  src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  src.write_bytes(
    b'{"completion": "\\\\boxed{1}", "reference": "1"}\n'
    b'{"completion": "caf\xe9", "reference": "1"}\n'
    b'{"completion": "\\\\boxed{2}", "reference": "2"}\n'
  )
  before = src.read_bytes()
  assert score.main(["--verifier=math", f"--input={src}", f"--output={dst}"]) == 0
  rows = [json.loads(line) for line in dst.read_text().splitlines()]
  assert [r["status"] for r in rows] == ["ok", "invalid", "ok"]
  assert "line 2 is not valid UTF-8" in rows[1]["reason"]
  assert [p.name for p in tmp_path.iterdir() if ".tmp." in p.name] == []  # Renamed whole.
  assert score.main(["--verifier=math", f"--input={src}", f"--output={src}"]) == 2
  assert "is the input file" in capsys.readouterr().err
  assert score.main(["--verifier=math", f"--input={src}", f"--output={tmp_path}"]) == 2
  assert "is a directory" in capsys.readouterr().err
  assert src.read_bytes() == before
