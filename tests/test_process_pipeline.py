"""The process-supervision pipeline end to end at `:runlocal` size: it stops where told,
resumes without redoing a finished stage, and writes the report the issue's contract
names (the figures are measured by the full config; here they are checked for shape and
for consistency with the artifacts they come from)."""

import importlib.util
import json
import pathlib

import pytest

from jaxrl_verify.process import pipeline, red_team, stepwise_data
from jaxrl_verify.sampler import jsonl

CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "prm_chain.py"


def _config(**overrides):
  spec = importlib.util.spec_from_file_location("prm_chain", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("runlocal")
  with c.unlocked():
    c.policy.sft_steps = 20
    for k, v in overrides.items():
      section, name = k.split(".") if "." in k else (None, k)
      (c[section] if section else c)[name] = v
  return c


def test_pipeline_stops_resumes_and_reports(tmp_path):
  workdir = str(tmp_path / "run")
  assert pipeline.run(_config(stop_after="labels"), workdir) is None
  times = json.loads((tmp_path / "run" / pipeline.TIMES_FILE).read_text())
  assert list(times) == ["policy", "solutions", "labels"]
  assert not (tmp_path / "run" / "prm").exists()
  # The labels are label_cli's output format, readable by the RM data reader.
  rows = jsonl.read_jsonl(tmp_path / "run" / "labels" / "train.jsonl")
  assert rows and all(len(r["labels"]) == len(r["steps"]) == len(r["rollouts"]) for r in rows)
  for i, r in enumerate(rows):
    stepwise_data.read_labelled(r, f"row {i}")

  report = pipeline.run(_config(), workdir)
  after = json.loads((tmp_path / "run" / pipeline.TIMES_FILE).read_text())
  assert {k: after[k] for k in times} == times  # Finished stages were not redone.
  assert list(after) == list(pipeline.STAGES)
  assert report == json.loads((tmp_path / "run" / "report.json").read_text())
  assert set(report["mc_label_accuracy"]["hard"]) == set(report["mc_label_accuracy"]["soft"])
  assert set(report["mc_label_accuracy"]["hard"]) == {"1", "2"}
  assert set(report["prm_first_error"]) >= {"acc_error", "acc_correct", "f1"}
  bon = report["best_of_n"]
  assert set(bon) == {
    "prm_min",
    "prm_product",
    "prm_last",
    "prm_weighted_vote",
    "orm",
    "majority",
    "oracle",
  }
  assert all(set(v) == {"1", "2", "4"} for v in bon.values())
  # Oracle pass@N bounds every selector, and pass@1 equals the samples' mean verdict.
  for name, points in bon.items():
    assert all(points[n] <= bon["oracle"][n] + 1e-9 for n in points), name
  cands = [
    x for rec in jsonl.read_jsonl(tmp_path / "run" / "candidates.jsonl") for x in rec["candidates"]
  ]
  assert len(cands) == 4 * 4
  assert bon["oracle"]["4"] == pytest.approx(
    sum(
      any(x["correct"] for x in rec["candidates"])
      for rec in jsonl.read_jsonl(tmp_path / "run" / "candidates.jsonl")
    )
    / 4
  )
  assert (
    set(report["beam_search"]) >= {"accuracy", "tokens"} and report["beam_search"]["tokens"] > 0
  )
  red = report["red_team"]
  assert red["problems"] == 4 and set(red) == {"prm_min", "prm_last", "orm_last", "problems"}
  for scores in (red["prm_min"], red["prm_last"], red["orm_last"]):
    assert set(scores) == set(red_team.KINDS)
    assert all(0.0 <= k["honest_wins"] <= 1.0 for k in scores.values())
  assert report["num_heldout_problems"] == 4 and report["wall_s"] == pytest.approx(
    sum(v for k, v in after.items() if k != "report")
  )
  assert (tmp_path / "run" / "best_of_n.png").stat().st_size > 1000
  # A third run finds everything done and returns the same report.
  assert pipeline.run(_config(), workdir) == report


def test_pipeline_config_errors_name_the_field(tmp_path):
  with pytest.raises(ValueError, match="config.stop_after"):
    pipeline.run(_config(stop_after="nope"), str(tmp_path))
  with pytest.raises(ValueError, match="config.task.num_test"):
    pipeline.run(_config(**{"best_of_n.problems": 999}), str(tmp_path))
  with pytest.raises(ValueError, match="policy.init_from"):
    pipeline.run(_config(**{"task.name": "countdown"}), str(tmp_path))
