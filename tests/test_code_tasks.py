"""Code task builders: synthetic tasks whose references pass their own tests in the sandbox,
MBPP and HumanEval from user-provided files, and a clear error when the files are missing."""

import concurrent.futures
import gzip
import json

import numpy as np
import pytest

from jaxrl_verify.data import code_tasks, tasks
from jaxrl_verify.verifiers.code import verify_code

FIELDS = {"id", "prompt", "reference", "tests", "hidden_tests", "entry_point", "check"}


def _verify_reference(task, example):
  completion = f"```python\n{task.reference(example)}\n```"
  return verify_code(completion, None, timeout_s=20.0, **task.verifier_kwargs(example))


def test_synthetic_tasks_are_stable_and_their_references_pass(tmp_path):
  task = tasks.get_task("code_synthetic", size="tiny")
  train = task.data_source("train", data_dir=tmp_path)
  test = task.data_source("test", data_dir=tmp_path)
  assert (len(train), len(test)) == (32, 16)
  assert {ex["prompt"] for ex in train}.isdisjoint(ex["prompt"] for ex in test)
  again = tasks.get_task("code_synthetic", size="tiny").data_source("test", tmp_path / "again")
  assert [ex["id"] for ex in test] == [ex["id"] for ex in again]
  assert [ex["prompt"] for ex in test] == [ex["prompt"] for ex in again]
  first = test[0]
  assert set(first) >= FIELDS and len(first["tests"]) == 3 and len(first["hidden_tests"]) == 5
  assert first["tests"][0] in task.format_prompt(first)
  picked = {ex["family"]: ex for ex in train}  # one example per family
  assert set(picked) == set(code_tasks.FAMILIES)
  with concurrent.futures.ThreadPoolExecutor(4) as ex:
    verdicts = list(ex.map(lambda e: _verify_reference(task, e), picked.values()))
  assert [(v.status, v.extras["hidden_reward"]) for v in verdicts] == [("ok", 1.0)] * len(picked)


def test_synthetic_visible_and_hidden_tests_differ():
  rng = np.random.default_rng(1)
  for family in code_tasks.FAMILIES:
    ex = code_tasks.make_example(rng, family)
    assert not set(ex["tests"]) & set(ex["hidden_tests"])
    assert all(t.startswith(f"assert {ex['entry_point']}(") for t in ex["tests"])


def _mbpp_row(task_id, code, tests):
  return {
    "task_id": task_id,
    "text": "Write a function to double a number.",
    "code": code,
    "test_list": tests,
    "test_setup_code": "",
    "challenge_test_list": [],
  }


def test_mbpp_from_manual_dir(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  rows = [
    _mbpp_row(
      12, "def double(x):\n  return 2 * x", [f"assert double({i}) == {2 * i}" for i in (1, 2, 3)]
    ),
    _mbpp_row(700, "def double(x):\n  return x + x", ["assert double(5) == 10"]),
  ]
  (manual / "mbpp.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  task = tasks.get_task("mbpp", manual_dir=str(manual))
  test = task.data_source("test", data_dir=tmp_path / "data")
  assert len(test) == 1 and len(task.data_source("train", tmp_path / "data")) == 1
  ex = test[0]
  assert (ex["id"], ex["entry_point"], ex["tests"]) == (
    "mbpp-12",
    "double",
    ["assert double(1) == 2"],
  )
  assert ex["hidden_tests"] == ["assert double(2) == 4", "assert double(3) == 6"]
  verdict = _verify_reference(task, ex)
  assert (verdict.status, verdict.extras["hidden_reward"]) == ("ok", 1.0)


def test_humaneval_from_manual_dir(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  row = {
    "task_id": "HumanEval/0",
    "prompt": 'def inc(x: int) -> int:\n  """Adds one."""\n',
    "canonical_solution": "  return x + 1\n",
    "test": "def check(candidate):\n  assert candidate(1) == 2\n  assert candidate(-1) == 0\n",
    "entry_point": "inc",
  }
  with gzip.open(manual / "HumanEval.jsonl.gz", "wt") as f:
    f.write(json.dumps(row) + "\n")
  task = tasks.get_task("humaneval", manual_dir=str(manual))
  (ex,) = task.data_source("test", data_dir=tmp_path / "data")
  assert (ex["id"], ex["entry_point"]) == ("HumanEval-0", "inc")
  verdict = _verify_reference(task, ex)
  assert verdict.status == "ok", verdict
  wrong = verify_code("def inc(x):\n  return x", **task.verifier_kwargs(ex))
  assert wrong.reason.startswith("wrong-answer")


@pytest.mark.parametrize("name, file", [("mbpp", "mbpp.jsonl"), ("humaneval", "HumanEval.jsonl")])
def test_missing_files_say_where_to_put_them(tmp_path, name, file):
  task = tasks.get_task(name, manual_dir=str(tmp_path / "empty"))
  with pytest.raises(FileNotFoundError, match=f"needs {file}.*put the file there"):
    task.data_source("test", data_dir=tmp_path / "data")


def test_bad_size_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="Unknown size"):
    tasks.get_task("code_synthetic", size="huge").data_source("train", tmp_path)
