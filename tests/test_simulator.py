"""The simulator domain: systems against closed forms, the verifier's score, the red team, tfds.

The systems' programs are checked against references outside them (closed-form solutions,
conserved quantities, numpy implementations); the verifier's skill score against a numpy
re-computation; every program in `tests/redteam_simulator/` must score no more than the
constant-state predictor (0) with the reason prefix its header names.
"""

import concurrent.futures
import json
import math
import pathlib
import re

import numpy as np
import pytest

from jaxrl_verify.data import simulators, tasks
from jaxrl_verify.verifiers import base
from jaxrl_verify.verifiers import simulator_systems as systems
from jaxrl_verify.verifiers.simulator import parse_spec, skill_score, verify_simulator

CORPUS = pathlib.Path(__file__).parent / "redteam_simulator"
HANGS = ("spins", "sleeps")


def _rollout(system, params, state, n, dt):
  return np.asarray(systems.rollout(systems.program(system, params), state, n, dt))


# ------------------------------------------------------------------ systems vs references


def test_spring_matches_the_closed_form_underdamped_solution():
  k, c, x0, v0, dt, n = 4.0, 0.4, 1.5, -0.5, 0.1, 30
  got = _rollout("spring", {"K": k, "C": c}, [x0, v0], n, dt)
  w = math.sqrt(k - c * c / 4)
  t = dt * np.arange(1, n + 1)
  b = (v0 + c / 2 * x0) / w
  x = np.exp(-c * t / 2) * (x0 * np.cos(w * t) + b * np.sin(w * t))
  np.testing.assert_allclose(got[:, 0], x, atol=1e-7)


def test_projectile_without_drag_is_a_parabola():
  g, dt, n = 9.81, 0.05, 40
  got = _rollout("projectile", {"G": g, "D": 0.0}, [0.0, 2.0, 3.0, 4.0], n, dt)
  t = dt * np.arange(1, n + 1)
  np.testing.assert_allclose(got[:, 0], 3.0 * t, atol=1e-9)
  np.testing.assert_allclose(got[:, 1], 2.0 + 4.0 * t - g * t * t / 2, atol=1e-9)
  np.testing.assert_allclose(got[:, 3], 4.0 - g * t, atol=1e-9)


def test_projectile_drag_slows_it_down():
  slow = _rollout("projectile", {"G": 9.81, "D": 0.1}, [0.0, 2.0, 8.0, 8.0], 20, 0.05)
  free = _rollout("projectile", {"G": 9.81, "D": 0.0}, [0.0, 2.0, 8.0, 8.0], 20, 0.05)
  assert np.all(np.diff(slow[:, 2]) < 0) and slow[-1, 0] < free[-1, 0]


def test_lotka_volterra_conserves_its_first_integral():
  p = {"A": 1.1, "B": 0.4, "P": 0.3, "Q": 1.2}
  got = _rollout("lotka_volterra", p, [2.0, 1.0], 200, 0.1)

  def h(x, y):
    return p["P"] * x - p["Q"] * np.log(x) + p["B"] * y - p["A"] * np.log(y)

  np.testing.assert_allclose(h(got[:, 0], got[:, 1]), h(2.0, 1.0), atol=1e-7)
  assert got[:, 0].max() > 2.5  # it does oscillate


def test_bouncing_ball_hand_worked_impact():
  # Dropped from 1.25 m with G = 10: it lands at t = 0.5 s at 5 m/s and leaves at 5*E.
  g, e = 10.0, 0.8
  got = _rollout("bouncing_ball", {"G": g, "E": e}, [1.25, 0.0], 12, 0.05)
  up = 5.0 * e
  np.testing.assert_allclose(got[9], [1.25 - g * 0.5**2 / 2, -5.0], atol=1e-9)  # t = 0.5
  np.testing.assert_allclose(got[11], [up * 0.1 - g * 0.01 / 2, up - g * 0.1], atol=1e-9)


def test_automaton_matches_a_numpy_rule_table():
  rng = np.random.default_rng(0)
  for rule in (30, 90, 110, 184):
    cells = rng.integers(0, 2, systems.CA_WIDTH)
    got = _rollout("automaton", {"RULE": rule}, cells.tolist(), 10, 1.0)
    table = np.array([(rule >> i) & 1 for i in range(8)])
    want, c = [], cells
    for _ in range(10):
      c = table[4 * np.roll(c, 1) + 2 * c + np.roll(c, -1)]
      want.append(c)
    np.testing.assert_array_equal(got, np.asarray(want, dtype=float))


def test_heat_matches_the_ftcs_matrix():
  alpha, n_cells = 0.3, systems.HEAT_CELLS
  lap = -2 * np.eye(n_cells) + np.eye(n_cells, k=1) + np.eye(n_cells, k=-1)
  u0 = np.random.default_rng(1).random(n_cells)
  got = _rollout("heat", {"ALPHA": alpha}, u0.tolist(), 15, 1.0)
  u, want = u0, []
  for _ in range(15):
    u = u + alpha * lap @ u
    want.append(u)
  np.testing.assert_allclose(got, np.asarray(want), atol=1e-12)


def test_unknown_system_and_missing_params_are_clear_errors():
  with pytest.raises(ValueError, match="Unknown simulator system 'pendulum'"):
    systems.get_system("pendulum")
  with pytest.raises(ValueError, match=r"needs parameters \['C'\]"):
    systems.program("spring", {"K": 1.0})


# ------------------------------------------------------------------ the score


def test_skill_score_against_a_numpy_reference():
  rng = np.random.default_rng(0)
  truth = rng.normal(size=(3, 6, 2)) * [1.0, 50.0]
  initial = rng.normal(size=(3, 2))
  pred = truth + rng.normal(size=truth.shape) * [0.3, 10.0]
  scale = np.sqrt(np.mean((truth - initial[:, None]) ** 2, axis=(0, 1)))

  def err(p):
    return np.sqrt(np.sum(((p - truth) / scale) ** 2))

  ref = min(err(np.repeat(initial[:, None], 6, 1)), err(truth.mean(0)[None].repeat(3, 0)))
  want = max(0.0, 1.0 - min(1.0, err(pred) / ref))
  assert skill_score(pred.tolist(), truth.tolist(), initial.tolist(), False) == pytest.approx(
    want, abs=1e-12
  )
  assert 0.0 < want < 1.0
  const = np.repeat(initial[:, None], 6, 1)
  assert skill_score(const, truth, initial, False) == 0.0
  assert skill_score(truth, truth, initial, False) == 1.0


def test_no_input_independent_prediction_has_skill():
  # The climatology reference: whatever fixed sequence a program returns, it scores 0.
  rng = np.random.default_rng(1)
  truth = np.cumsum(rng.normal(size=(5, 20, 3)), axis=1)
  initial = truth[:, 0] - rng.normal(size=(5, 3))
  for _ in range(200):
    fixed = truth.mean(0) + rng.normal(size=(20, 3)) * rng.uniform(0, 2)
    assert skill_score(np.repeat(fixed[None], 5, 0), truth, initial, False) == 0.0
  cells = rng.integers(0, 2, size=(5, 10, 8)).astype(float)
  for _ in range(200):
    fixed = rng.integers(0, 2, size=(10, 8)).astype(float)
    assert skill_score(np.repeat(fixed[None], 5, 0), cells, cells[:, 0], True) == 0.0


def test_discrete_skill_counts_cells():
  truth = [[[1, 0, 1, 1]], [[0, 0, 0, 1]]]
  initial = [[0, 0, 0, 1], [0, 0, 0, 1]]  # persistence: 2 wrong; majority: 2 wrong too
  assert skill_score(truth, truth, initial, True) == 1.0
  assert skill_score([[[1, 0, 0, 1]], [[0, 0, 0, 1]]], truth, initial, True) == 0.5
  assert skill_score([[[0, 1, 0, 0]], [[0, 0, 0, 1]]], truth, initial, True) == 0.0


@pytest.fixture(scope="module")
def problems():
  rng = np.random.default_rng(0)
  return {name: simulators.sample_problem(rng, name) for name in simulators.SYSTEM_ORDER}


@pytest.fixture(scope="module")
def baseline_verdicts(problems):
  def run(name):
    ex = problems[name]
    programs = {"reference": ex["solution"], "warm_start": ex["warm_start"]}
    programs.update(simulators.baseline_programs(ex))
    return {
      k: verify_simulator(p, system=name, spec=ex["spec"], timeout_s=20)
      for k, p in programs.items()
    }

  with concurrent.futures.ThreadPoolExecutor(4) as ex:
    return dict(zip(problems, ex.map(run, problems)))


@pytest.mark.parametrize("name", simulators.SYSTEM_ORDER)
def test_reference_program_scores_one_and_constant_zero(name, baseline_verdicts):
  v = baseline_verdicts[name]
  assert (v["reference"].status, v["reference"].reward) == ("ok", 1.0), v["reference"]
  assert v["reference"].extras["runs"] == 1.0
  assert v["constant"].reward == 0.0 and v["constant"].reason.startswith("no-skill:")
  # Wrong constants in the right program: it runs, and predicts worse than the truth.
  warm = v["warm_start"]
  assert warm.extras["runs"] == 1.0 and warm.extras["prediction_reward"] < 0.99, warm
  assert 0.0 <= v["linear"].extras["prediction_reward"] <= 1.0


def test_linear_baseline_is_exact_for_the_spring(baseline_verdicts):
  # The spring is linear: an affine one-step map is its exact discretisation.
  assert baseline_verdicts["spring"]["linear"].extras["prediction_reward"] > 0.99


def test_length_cost_makes_a_lookup_table_lose(problems):
  ex = problems["spring"]
  table = "TABLE = " + repr([round(0.001 * i, 3) for i in range(2000)]) + "\n"
  v = verify_simulator(f"```python\n{ex['answer']}{table}```", system="spring", spec=ex["spec"])
  assert v.extras["prediction_reward"] == 1.0 and v.extras["length_cost"] > 0.5
  assert v.reward == max(0.0, 1.0 - v.extras["length_cost"]) == 0.0
  short = verify_simulator(ex["solution"], system="spring", spec=ex["spec"])
  assert short.extras["length_cost"] == 0.0


def test_memorising_the_visible_trajectory_has_no_skill(problems):
  for name in simulators.SYSTEM_ORDER:
    ex = problems[name]
    shown = simulators.shown_trajectories(ex["question"])[0][1:]
    program = (
      f"SHOWN = {shown!r}\nCALLS = [0]\n\n"
      "def step(state, dt):\n  CALLS[0] += 1\n  return SHOWN[min(CALLS[0], len(SHOWN)) - 1]\n"
    )
    v = verify_simulator(f"```python\n{program}```", system=name, spec=ex["spec"])
    assert v.reward == 0.0 and v.status == "wrong", (name, v)


def test_bad_spec_and_missing_code_are_clear():
  with pytest.raises(ValueError, match="not valid JSON"):
    parse_spec("{params")
  with pytest.raises(ValueError, match=r"lacks \['heldout', 'horizon'\]"):
    parse_spec({"params": {}, "dt": 0.1})
  spec = {"params": {"K": 1.0, "C": 0.2}, "dt": 0.1, "heldout": [[1.0, 0.0]], "horizon": 3}
  v = verify_simulator("I think the spring is stiff.", system="spring", spec=spec)
  assert v.status == "invalid" and v.reason.startswith("no-program")
  v = verify_simulator("```python\ndef step(state dt):\n```", system="spring", spec=spec)
  assert v.status == "invalid" and v.reason.startswith("syntax-error")


def test_simulate_interface_is_accepted(problems):
  ex = problems["heat"]
  program = ex["answer"].replace("def step(", "def _one(") + (
    "\ndef simulate(state, n, dt):\n  out = []\n  for _ in range(n):\n"
    "    state = _one(state, dt)\n    out.append(state)\n  return out\n"
  )
  v = verify_simulator(f"```python\n{program}```", system="heat", spec=ex["spec"])
  assert (v.status, v.reward) == ("ok", 1.0), v


# ------------------------------------------------------------------ red team


def _corpus():
  out = {}
  for path in sorted(CORPUS.glob("*.py")):
    text = path.read_text()
    out[path.stem] = (dict(re.findall(r"^# (\w+): (.+)$", text, re.MULTILINE)), text)
  return out


PROGRAMS = _corpus()


@pytest.fixture(scope="module")
def corpus_verdicts(problems):
  ex = problems["spring"]

  def run(name):
    header, text = PROGRAMS[name]
    timeout_s = 2.0 if header["expect"] in HANGS else 20.0
    return verify_simulator(
      f"```python\n{text}```", system="spring", spec=ex["spec"], timeout_s=timeout_s
    )

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    return dict(zip(PROGRAMS, pool.map(run, PROGRAMS)))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_redteam_program(name, corpus_verdicts, baseline_verdicts):
  header, _ = PROGRAMS[name]
  verdict = corpus_verdicts[name]
  constant = baseline_verdicts["spring"]["constant"]
  assert verdict.reward <= constant.reward == 0.0, verdict
  assert verdict.status in ("wrong", "timeout"), verdict
  assert verdict.reason.startswith(header["expect"] + ":"), verdict


# ------------------------------------------------------------------ the task


def test_tfds_task_round_trip_and_verifier_registry(tmp_path):
  task = tasks.get_task("simulators", size="tiny", noise=0.1)
  train = task.data_source("train", data_dir=tmp_path)
  test = task.data_source("test", data_dir=tmp_path)
  assert (len(train), len(test)) == (64, 16)
  assert not {e["question"] for e in train} & {e["question"] for e in test}
  ex = train[0]
  assert "Observed trajectory 1:" in task.format_prompt(ex)
  spec = json.loads(ex["spec"])
  assert len(spec["heldout"]) == simulators.HELDOUT_ROLLOUTS
  for h in spec["heldout"]:  # held-out initial states are not the shown ones
    assert f"t=0: [{', '.join(f'{v:.4g}' for v in h)}]" not in ex["question"]
  verdict = base.get(task.verifier)(ex["solution"], task.reference(ex), **task.verifier_kwargs(ex))
  assert verdict.status == "ok", verdict
  assert {e["system"] for e in train} == set(simulators.SYSTEM_ORDER)


def test_noise_perturbs_only_the_shown_states():
  clean = simulators.sample_problem(np.random.default_rng(5), "spring", 0.0)
  noisy = simulators.sample_problem(np.random.default_rng(5), "spring", 0.2)
  assert clean["spec"] == noisy["spec"] and clean["answer"] == noisy["answer"]
  a = simulators.shown_trajectories(clean["question"])
  b = simulators.shown_trajectories(noisy["question"])
  assert a[0][0] == b[0][0] and a[0][1:] != b[0][1:]


def test_options_are_validated():
  with pytest.raises(ValueError, match="Unknown simulator system"):
    simulators.Simulators.make_config("tiny", systems=("pendulum",))
  with pytest.raises(ValueError, match="noise must be in"):
    simulators.Simulators.make_config("tiny", noise=-1.0)
  cfg = simulators.Simulators.make_config("tiny", systems="heat")
  assert cfg.difficulty == (6,)


def test_score_cli_scores_simulator_lines_and_bad_specs(tmp_path):
  import subprocess
  import sys

  ex = simulators.sample_problem(np.random.default_rng(3), "projectile")
  fields = {"system": ex["system"], "spec": json.loads(ex["spec"])}
  lines = [
    {"completion": ex["solution"], **fields},
    {"completion": ex["warm_start"], **fields},
    {"completion": simulators.baseline_programs(ex)["constant"], **fields},
    {"completion": ex["solution"], "system": "projectile", "spec": {"dt": 0.1}},
  ]
  src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  src.write_text("".join(json.dumps(line) + "\n" for line in lines))
  repo = pathlib.Path(__file__).resolve().parents[1]
  proc = subprocess.run(
      [sys.executable, "-m", "jaxrl_verify.score", "--verifier=simulator", "--input", str(src),
       "--output", str(dst), "--workers", "2"],
      capture_output=True, text=True, cwd=repo, timeout=300, check=False,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr
  rows = [json.loads(line) for line in dst.read_text().splitlines()]
  assert [r["status"] for r in rows] == ["ok", "wrong", "wrong", "error"], rows
  assert rows[0]["reward"] == 1.0 and 0.0 < rows[1]["prediction_reward"] < 1.0
  assert rows[2]["reason"].startswith("no-skill") and "heldout" in rows[3]["reason"]


def test_grpo_simulator_runlocal_logs_prediction_and_evaluate_writes_baselines(tmp_path):
  import subprocess
  import sys

  repo = pathlib.Path(__file__).resolve().parents[1]
  config = "--config=configs/grpo_simulator.py:runlocal"
  for module in ("train", "evaluate"):
    proc = subprocess.run(
      [sys.executable, "-m", f"jaxrl_verify.{module}", config, f"--workdir={tmp_path}"],
      capture_output=True, text=True, cwd=repo, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  evals = [r for r in records if "eval/prediction_reward" in r]
  assert [r["step"] for r in evals] == [0, 2] and all("eval/runs_frac" in r for r in evals)
  assert all("verify/runs_frac" in r for r in records if "reward/mean" in r)
  report = json.loads((tmp_path / "eval.json").read_text())
  assert report["baseline/constant/prediction_reward"] == 0.0
  assert report["baseline/constant/runs_frac"] == report["baseline/linear/runs_frac"] == 1.0
  assert 0.0 <= report["baseline/linear/prediction_reward"] <= 1.0
