"""Public step-labelled formats (Math-Shepherd, PRM800K, TRL) and the label_cli format,
read from small fixtures in each format, directly and through the tfds builder."""

import json
import pathlib
import re
import shutil

import pytest

from jaxrl_verify.process import stepwise_data as sd

DATA = pathlib.Path(__file__).resolve().parent / "data" / "stepwise"


def test_math_shepherd_tags_become_steps_and_labels():
  sols = list(sd.read_file(str(DATA / "math_shepherd.jsonl"), "math_shepherd"))
  assert [len(s.steps) for s in sols] == [3, 2, 3]
  assert sols[0].prompt == "Janet has 3 apples and buys 2 more. How many apples does she have?"
  assert sols[0].steps == (
    "Janet starts with 3 apples.",
    "She buys 2 more, so 3 + 2 = 5.",
    "The answer is: 5",
  )
  assert [s.labels for s in sols] == [(1.0, 1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0)]
  assert sols[0].reference is None


def test_prm800k_follows_the_chosen_completions():
  sols = list(sd.read_file(str(DATA / "prm800k.jsonl"), "prm800k"))
  assert sols[0].steps[0] == "The divisors of 6 are 1, 2, 3 and 6."
  assert sols[0].labels == (1.0, 1.0, 1.0) and sols[0].reference == "4"  # Neutral -> 1.
  strict = list(sd.read_file(str(DATA / "prm800k.jsonl"), "prm800k", neutral=0.0))
  assert strict[0].labels == (1.0, 0.0, 1.0)
  # The labeller stopped at the first error: the last step is the rated, unchosen one.
  assert sols[1].steps == ("15% of 40 is 0.15 * 40.", "0.15 * 40 = 5.")
  assert sols[1].labels == (1.0, 0.0)


def test_trl_and_labelled_formats():
  sols = list(sd.read_file(str(DATA / "trl.jsonl"), "trl"))
  assert [s.labels for s in sols] == [(1.0, 1.0, 1.0), (1.0, 0.0)]
  row = {"prompt": "Q", "steps": ["a", "b"], "labels": [1, 0], "soft_labels": [0.25, None]}
  assert sd.read_labelled(row, "x").labels == (1.0, 0.0)
  assert sd.read_labelled(row, "x", soft=True).labels == (0.25, 0.0)


@pytest.mark.parametrize(
  "fmt,row,message",
  [
    ("trl", {"prompt": "Q", "completions": ["a", "b"], "labels": [True]}, "2 steps but 1 labels"),
    ("trl", {"prompt": "Q", "completions": [], "labels": []}, "has no steps"),
    ("math_shepherd", {"input": "Q Step 1: a ки", "label": "Q Step 1: a"}, "no +/- where"),
    ("prm800k", {"question": "Q"}, 'needs "question" and "label"'),
    ("labelled", {"steps": ["a"], "labels": [1, 0]}, "1 steps but 2 labels"),
  ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, fmt, row, message):
  path = tmp_path / "bad.jsonl"
  path.write_text(json.dumps(row) + "\n")
  with pytest.raises(ValueError, match=r"bad\.jsonl line 1.*" + re.escape(message)):
    list(sd.read_file(str(path), fmt))
  with pytest.raises(ValueError, match="Unknown stepwise format 'csv'"):
    list(sd.read_file(str(path), "csv"))


@pytest.mark.parametrize("fmt", ["math_shepherd", "prm800k", "trl"])
def test_builder_reads_manual_dir(tmp_path, fmt):
  manual = tmp_path / "manual"
  manual.mkdir()
  for split in ("train", "test"):
    shutil.copy(DATA / f"{fmt}.jsonl", manual / f"{split}.jsonl")
  source = sd.data_source(str(manual), str(tmp_path / "data"), "train", fmt)
  direct = list(sd.read_file(str(DATA / f"{fmt}.jsonl"), fmt))
  assert len(source) == len(direct)
  for i, sol in enumerate(direct):
    ex = source[i]
    assert [s.decode() if isinstance(s, bytes) else s for s in ex["steps"]] == list(sol.steps)
    assert tuple(float(x) for x in ex["labels"]) == sol.labels
  with pytest.raises(FileNotFoundError, match="need train.jsonl and test.jsonl"):
    sd.data_source(str(tmp_path / "empty"), str(tmp_path / "data2"), "train", fmt)
