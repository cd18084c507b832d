"""The `simulator` verifier: a program that simulates a system, scored by how well it predicts.

The completion holds Python defining `step(state, dt) -> state` (or
`simulate(state, n, dt) -> [state_1, ..., state_n]`). The task fields name the `system` and a
`spec` (a JSON string or dict): the hidden `params`, the time step `dt`, the held-out initial
states `heldout` and the `horizon`. The verifier

1. runs the program *once* in the bubblewrap sandbox (the code verifier's harness, with its
   hack detection: reading files, forging verdicts, monkeypatching, sleeping, spinning,
   flooding, ...) with one call per held-out initial state, each returning the `horizon`
   states after it, converted to plain floats inside the sandbox;
2. computes the true held-out trajectories *here*, in the parent (`simulator_systems`): they
   never enter the sandbox, only the initial states do;
3. scores the rollouts with a **skill score**, `1 - min(1, err / err_ref)`: `err` is the
   RMS error of the predicted states, pooled over rollouts, steps and state components
   scaled to unit RMS change (so a large coordinate does not drown a small one); `err_ref`
   is the same for the better of two trivial predictors, *persistence* (hold the initial
   state) and the *oracle climatology* (per step, the mean true state over the rollouts).
   The climatology is why a program that ignores its input cannot score: memorising the
   shown trajectory, replaying it, or predicting any fixed sequence is a state-independent
   prediction, and the mean minimises the pooled error among those (`skill_score`). For the
   automaton the error is the number of wrong cells (majority vote as the climatology).
   Holding the initial state scores 0, a perfect simulator 1 (`prediction_reward`).
4. subtracts an MDL-style length cost, `mdl_per_kchar` per 1000 characters of program beyond
   `mdl_free_chars`, so that a lookup table cannot buy reward: `reward = max(0,
   prediction_reward - length_cost)`.

Status `ok` when `prediction_reward >= ok_threshold`, else `wrong` with a reason:
`no-skill` (no better than persistence or the climatology), `poor-prediction`, `non-finite`,
`wrong-shape`, `missing-function`, `runtime-error`, `not-plain`, or one of the code
verifier's `HACKS`; `invalid` for no or unparsable code; `timeout`/`error` when the sandbox
could not run. `extras`: `prediction_reward`, `length_cost`, `program_chars`, `runs`
(1 when every rollout came back well-formed and finite), `exact_frac` (rollouts predicted
exactly; discrete systems).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxrl_verify.verifiers import code_run
from jaxrl_verify.verifiers import sandbox as sbx
from jaxrl_verify.verifiers import simulator_systems as systems
from jaxrl_verify.verifiers.base import Verdict, register
from jaxrl_verify.verifiers.code_run import Hack
from jaxrl_verify.verifiers.code_split import extract_program

_ROLLOUT = "__jv_rollout__"
# Appended after the candidate's program: runs its `step` (or `simulate`) and returns plain
# floats of the expected shape, so the parent receives data, never objects.
_DRIVER = f"""

def {_ROLLOUT}(state, n, dt):
  import itertools
  dim = len(state)
  g = globals()
  def plain(s, t):
    s = [float(v) for v in itertools.islice(iter(s), dim + 1)]
    if len(s) != dim:
      raise ValueError(f"wrong-shape: state {{t}} has not {{dim}} values")
    return s
  if callable(g.get("step")):
    s, out = list(state), []
    for t in range(n):
      s = plain(g["step"](list(s), dt), t + 1)
      out.append(s)
    return out
  if callable(g.get("simulate")):
    traj = list(itertools.islice(iter(g["simulate"](list(state), n, dt)), n + 1))
    if len(traj) != n:
      raise ValueError(f"wrong-shape: simulate returned {{len(traj)}} states, not {{n}}")
    return [plain(s, t + 1) for t, s in enumerate(traj)]
  raise NameError("missing-function: define step(state, dt) or simulate(state, n, dt)")
"""


def parse_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
  """The spec as a dict with `params`, `dt`, `heldout` and `horizon`, validated."""
  if isinstance(spec, str):
    try:
      spec = json.loads(spec)
    except json.JSONDecodeError as e:
      raise ValueError(f"The simulator spec is not valid JSON ({e}); pass a JSON object.") from e
  if not isinstance(spec, Mapping):
    raise ValueError(f"The simulator spec must be a JSON object, got {type(spec).__name__}.")
  missing = [k for k in ("params", "dt", "heldout", "horizon") if k not in spec]
  if missing:
    raise ValueError(
      f"The simulator spec lacks {missing}; it needs params, dt, heldout and horizon."
    )
  heldout = spec["heldout"]
  if not heldout or not all(isinstance(s, list) and s for s in heldout):
    raise ValueError("The simulator spec's heldout must be a non-empty list of initial states.")
  if int(spec["horizon"]) < 1:
    raise ValueError(f"The simulator spec's horizon must be positive, got {spec['horizon']}.")
  return dict(spec)


def skill_score(
  predicted: Sequence[Sequence[Sequence[float]]],
  truth: Sequence[Sequence[Sequence[float]]],
  initial: Sequence[Sequence[float]],
  discrete: bool,
) -> float:
  """Skill in [0, 1] over all rollouts against the better trivial predictor; see the module.

  `err` is pooled over rollouts, steps and scaled components; the reference error is the
  smaller of *persistence* (hold each initial state) and the *oracle climatology* (at each
  step, the mean over rollouts of the true states, computed from the truth itself). The mean
  minimises the pooled squared error among predictions that do not depend on the initial
  state, so any program that ignores its input (a memorised or replayed trajectory, a fitted
  constant) scores 0 however it was chosen. Discrete systems count wrong cells, with the
  per-cell majority as the climatology (it minimises the count in the same way).

  Args:
    predicted, truth: `[rollout][t][component]`, the states after each step.
    initial: `[rollout][component]`, the initial states.
    discrete: count wrong cells instead of the scaled squared error.
  """
  pred, true = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
  s0 = np.asarray(initial, np.float64)[:, None, :]  # [rollout, 1, component]
  if discrete:
    majority = (true.mean(axis=0, keepdims=True) > 0.5).astype(np.float64)
    err = float(np.sum(pred != true))
    ref = min(float(np.sum(s0 != true)), float(np.sum(majority != true)))
    return _skill(err, ref)
  # Per-component scale: RMS change from the initial state over all rollouts and steps.
  rms = np.sqrt(np.mean((true - s0) ** 2, axis=(0, 1)))
  scale = np.maximum(rms, 1e-3 * rms.max() if rms.max() > 0 else 1.0)
  climatology = true.mean(axis=0, keepdims=True)

  def sq(p):
    return float(np.sum(((p - true) / scale) ** 2))

  return _skill(math.sqrt(sq(pred)), math.sqrt(min(sq(s0), sq(climatology))))


def _skill(err: float, err_ref: float) -> float:
  if err_ref <= 0.0:  # a trivial predictor is exact: only an exact prediction has skill
    return 1.0 if err <= 1e-12 else 0.0
  return max(0.0, 1.0 - min(1.0, err / err_ref))


def length_cost(program: str, free_chars: int, per_kchar: float) -> float:
  return per_kchar * max(0, len(program) - int(free_chars)) / 1000.0


@register("simulator")
def verify_simulator(
  completion: str,
  reference: Any = None,
  *,
  system: str,
  spec: str | Mapping[str, Any],
  mdl_free_chars: int = 1500,
  mdl_per_kchar: float = 0.25,
  ok_threshold: float = 0.9,
  timeout_s: float = 10.0,
  sandbox: str | None = None,
  **_: Any,
) -> Verdict:
  """Scores the simulator program in `completion`; see the module docstring.

  Args:
    completion: model output; the last fenced Python block, else the raw text.
    reference: unused (the truth is computed from `system` and `spec`).
    system: a name in `simulator_systems.SYSTEMS`.
    spec: JSON (or dict) with `params`, `dt`, `heldout` (initial states) and `horizon`.
    mdl_free_chars, mdl_per_kchar: the program-length cost.
    ok_threshold: the `prediction_reward` at and above which the status is `ok`.
    timeout_s: wall-clock deadline for the sandbox run, enforced from outside.
    sandbox: `bwrap` or `unsafe-fallback` (default: `$JAXRL_VERIFY_SANDBOX` or `bwrap`).
  """
  start = time.monotonic()
  sys_ = systems.get_system(system)
  spec = parse_spec(spec)
  heldout = [[float(v) for v in s] for s in spec["heldout"]]
  horizon, dt = int(spec["horizon"]), float(spec["dt"])
  program = extract_program(completion)
  extras = {"prediction_reward": 0.0, "length_cost": 0.0, "program_chars": 0.0, "runs": 0.0}

  def verdict(status, reward, reason) -> Verdict:
    return Verdict(status, reward, time.monotonic() - start, reason, extras=dict(extras))

  if program is None:
    return verdict("invalid", 0.0, "no-program: no Python code block or source found")
  extras["program_chars"] = float(len(program))
  try:
    compile(program, "<candidate>", "exec")
  except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
    return verdict("invalid", 0.0, f"syntax-error: {type(e).__name__}: {str(e)[:200]}")
  limits = code_run.default_limits(float(timeout_s))
  calls = [f"{_ROLLOUT}({s!r}, {horizon}, {dt!r})" for s in heldout]
  job = {"mode": "calls", "program": program + _DRIVER, "calls": calls}
  try:
    backend, _ = sbx.resolve_backend(sandbox)
    (out,) = sbx.run_group([sbx.Spec(job)], limits, backend=backend)
    answers = {r["call"]: r for r in out.reports if type(r.get("call")) is int}
    code_run.diagnose(
      out, "candidate", answers_missing=len(answers) < len(calls), cpu_s=limits.cpu_s
    )
    predicted = _predictions(out, answers, len(calls), horizon, len(heldout[0]))
  except sbx.SandboxUnavailable as e:
    return verdict("error", 0.0, str(e))
  except Hack as e:
    return verdict(e.status, 0.0, e.reason)
  if not all(systems.is_finite(p) for p in predicted):
    bad = next(i for i, p in enumerate(predicted) if not systems.is_finite(p))
    return verdict("wrong", 0.0, f"non-finite: rollout {bad} predicted NaN or inf")
  extras["runs"] = 1.0
  source = systems.program(system, spec["params"])
  truth = [systems.rollout(source, s, horizon, dt) for s in heldout]
  prediction = skill_score(predicted, truth, heldout, sys_.discrete)
  cost = length_cost(program, mdl_free_chars, mdl_per_kchar)
  extras.update(prediction_reward=prediction, length_cost=cost)
  if sys_.discrete:
    extras["exact_frac"] = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
  reward = max(0.0, prediction - cost)
  if prediction >= ok_threshold:
    return verdict("ok", reward, f"skill {prediction:.3f} over {len(heldout)} held-out rollouts")
  if prediction <= 0.0:
    return verdict("wrong", reward, "no-skill: no better than a trivial predictor")
  return verdict("wrong", reward, f"poor-prediction: skill {prediction:.3f}")


def _predictions(out, answers, n_calls: int, horizon: int, dim: int) -> list[list[list[float]]]:
  """The predicted rollouts from the sandbox's answers; failures raise `Hack` (`wrong`)."""
  load_error = out.first("load_error")
  if load_error:
    raise Hack(f"runtime-error: {str(load_error['load_error'])[:200]} (while loading)")
  predicted = []
  for i in range(n_calls):
    answer = answers[i]
    if "error" in answer:
      err = str(answer["error"])[:300]
      kind = next((k for k in ("missing-function", "wrong-shape") if k in err), "")
      raise Hack(f"{kind}: {err}" if kind else f"runtime-error: {err} (rollout {i})")
    if "not_plain" in answer:
      raise Hack(f"not-plain: rollout {i} returned a {answer['not_plain']} object")
    value = code_run.decode_result(answer.get("value"))
    ok = (
      type(value) is list
      and len(value) == horizon
      and all(type(s) is list and len(s) == dim for s in value)
      and all(type(v) is float for s in value for v in s)
    )
    if not ok:
      raise Hack(f"wrong-shape: rollout {i} is not {horizon} states of {dim} floats")
    predicted.append(value)
  return predicted
