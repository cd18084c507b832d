r"""Simulation tasks: observe a system, write a program that simulates it.

Each problem draws a system family (`jaxrl_verify.verifiers.simulator_systems`: damped
spring, projectile with drag, Lotka-Volterra, bouncing ball, elementary cellular automaton,
1-D heat equation) and its hidden constants, shows `VISIBLE_TRAJECTORIES` observed
trajectories of `VISIBLE_STEPS` steps in the prompt (options `shown_trajectories`,
`shown_steps`) and asks for `step(state, dt)`. The
verifier scores the program on `HELDOUT_ROLLOUTS` *other* initial states over `HORIZON`
steps (longer than anything shown); the held-out trajectories are computed by the verifier
in the parent process and never appear in the prompt or the sandbox.

  question: System: A unit mass on a damped spring: state [x, v] ... dt = 0.1.
            Observed trajectory 1:
            t=0: [1.2, -0.35]
            t=1: [1.153, -0.5982]
            ...
            Write a Python function step(state, dt) that returns the next state ...
  answer / solution: the reference program with the true constants (fenced in `solution`).

Fields beyond the shared ones: `system`, `spec` (JSON: `params`, `dt`, `heldout`, `horizon`;
what the verifier needs) and `warm_start` (the right program with *wrong* constants, drawn
independently: the warm start of the RL configs, which must then find the constants from the
observations).

Options: `systems` (names, default all six; `difficulty` levels 1..6 select them too, in
`SYSTEM_ORDER`) and `noise`, the stochastic variant: Gaussian observation noise on the
*shown* trajectories with standard deviation `noise` times each component's RMS change (for
the automaton, each shown cell flips with probability `noise`). The held-out truth stays
noiseless: the program should model the system, not the noise.

`baseline_programs` gives the two reference predictors scored by the same verifier: holding
the initial state (`constant`, skill 0 by construction) and an affine one-step map fitted by
least squares to the shown trajectories (`linear`; exact up to integration error for the
linear systems, spring and heat, so report baselines per system).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from jaxrl_verify.data import synthetic
from jaxrl_verify.verifiers import simulator_systems as systems

SYSTEM_ORDER = ("spring", "projectile", "lotka_volterra", "bouncing_ball", "automaton", "heat")
VISIBLE_TRAJECTORIES = 2
VISIBLE_STEPS = 8
HELDOUT_ROLLOUTS = 5
HORIZON = 20
CONSTANT_PROGRAM = "def step(state, dt):\n  return list(state)\n"


class SimulatorConfig(synthetic.SyntheticConfig):
  """A synthetic config plus the observation noise and the size of the shown data."""

  def __init__(
    self,
    *,
    noise: float = 0.0,
    shown_trajectories: int = VISIBLE_TRAJECTORIES,
    shown_steps: int = VISIBLE_STEPS,
    **kwargs,
  ):
    super().__init__(**kwargs)
    self.noise = float(noise)
    self.shown_trajectories, self.shown_steps = int(shown_trajectories), int(shown_steps)


class Simulators(synthetic.SyntheticBuilder):
  """Observed trajectories of systems with hidden constants; write `step(state, dt)`."""

  MAX_LEVEL = len(SYSTEM_ORDER)
  DEFAULT_DIFFICULTY = tuple(range(1, len(SYSTEM_ORDER) + 1))

  @classmethod
  def make_config(
    cls,
    size: str | None = None,
    *,
    num_train: int | None = None,
    num_test: int | None = None,
    systems: Sequence[str] | str | None = None,
    noise: float = 0.0,
    shown_trajectories: int = VISIBLE_TRAJECTORIES,
    shown_steps: int = VISIBLE_STEPS,
    difficulty: int | Sequence[int] | None = None,
    seed: int = 0,
  ) -> SimulatorConfig:
    """As `SyntheticBuilder.make_config`, plus `systems` (names), `noise` (in [0, 1)) and
    the shown data per prompt: `shown_trajectories` of `shown_steps` steps (shorter
    prompts for small CPU models)."""
    if systems is not None:
      names = (systems,) if isinstance(systems, str) else tuple(systems)
      unknown = [s for s in names if s not in SYSTEM_ORDER]
      if unknown or not names:
        raise ValueError(
          f"Unknown simulator system(s) {unknown or names}; choose from {SYSTEM_ORDER}."
        )
      difficulty = tuple(SYSTEM_ORDER.index(s) + 1 for s in names)
    if not 0.0 <= float(noise) < 1.0:
      raise ValueError(f"Simulator noise must be in [0, 1), got {noise}.")
    if int(shown_trajectories) < 1 or int(shown_steps) < 2:
      raise ValueError(
        "Simulator prompts need shown_trajectories >= 1 and shown_steps >= 2, got "
        f"{shown_trajectories} and {shown_steps}."
      )
    base = super().make_config(
      size, num_train=num_train, num_test=num_test, difficulty=difficulty, seed=seed
    )
    return SimulatorConfig(
      name=f"{base.name}_noise{float(noise):g}_shown{int(shown_trajectories)}x{int(shown_steps)}",
      shown_trajectories=shown_trajectories,
      shown_steps=shown_steps,
      num_train=base.num_train,
      num_test=base.num_test,
      difficulty=base.difficulty,
      seed=base.seed,
      noise=noise,
    )

  def _extra_features(self) -> dict[str, Any]:
    text = tfds.features.Text()
    return {"system": text, "spec": text, "warm_start": text}

  def _sample(self, rng: np.random.Generator, level: int) -> dict[str, Any]:
    cfg = self.builder_config
    shown = (cfg.shown_trajectories, cfg.shown_steps)
    return sample_problem(rng, SYSTEM_ORDER[level - 1], cfg.noise, shown)


def _draw_params(rng: np.random.Generator, sys_: systems.System) -> dict[str, float]:
  if sys_.name == "automaton":
    return {"RULE": float(rng.choice(systems.CA_RULES))}
  return {k: round(float(rng.uniform(lo, hi)), 3) for k, (lo, hi) in sys_.params.items()}


def _draw_state(rng: np.random.Generator, sys_: systems.System) -> list[float]:
  state = sys_.sample_state(lambda lo, hi: float(rng.uniform(lo, hi)))
  return [round(v, 3) for v in state]


def _fmt(v: float, discrete: bool) -> str:
  return str(int(v)) if discrete else f"{v:.4g}"


def sample_problem(
  rng: np.random.Generator,
  system: str,
  noise: float = 0.0,
  shown: tuple[int, int] = (VISIBLE_TRAJECTORIES, VISIBLE_STEPS),
) -> dict[str, Any]:
  """One problem for `system`: question, answer, solution, system, spec, warm_start.

  `shown`: (trajectories, steps) observed in the prompt.
  """
  sys_ = systems.get_system(system)
  params = _draw_params(rng, sys_)
  source = systems.program(system, params)
  n_shown, steps = shown
  shown = []
  for _ in range(n_shown):
    s0 = _draw_state(rng, sys_)
    shown.append([s0, *systems.rollout(source, s0, steps, sys_.dt)])
  heldout = [_draw_state(rng, sys_) for _ in range(HELDOUT_ROLLOUTS)]
  while True:  # the warm start's constants must differ from the truth
    wrong = _draw_params(rng, sys_)
    if wrong != params:
      break
  # Noise is drawn last, so a problem's truth does not depend on the noise level.
  shown = _observe(rng, np.asarray(shown, dtype=np.float64), noise, sys_.discrete)
  lines = [
    f"System: {sys_.description} The time step is dt = {sys_.dt:g}.",
  ]
  for j, traj in enumerate(shown):
    lines.append(f"Observed trajectory {j + 1}:")
    lines += [
      f"t={t}: [{', '.join(_fmt(v, sys_.discrete) for v in s)}]" for t, s in enumerate(traj)
    ]
  lines.append(
    "Write a Python function step(state, dt) that returns the next state as a list of "
    "numbers, with the unknown constants estimated from the observations."
  )
  spec = {"params": params, "dt": sys_.dt, "heldout": heldout, "horizon": HORIZON}
  return {
    "question": "\n".join(lines),
    "answer": source,
    "solution": f"```python\n{source}```",
    "system": system,
    "spec": json.dumps(spec),
    "warm_start": f"```python\n{systems.program(system, wrong)}```",
  }


def _observe(rng, shown: np.ndarray, noise: float, discrete: bool) -> list[list[list[float]]]:
  """The shown trajectories `[traj, t, component]` with observation noise (t = 0 kept)."""
  if noise > 0.0:
    if discrete:
      flip = rng.random(shown.shape) < noise
      flip[:, 0] = False
      shown = np.where(flip, 1.0 - shown, shown)
    else:
      scale = np.sqrt(np.mean((shown - shown[:, :1]) ** 2, axis=(0, 1)))
      noisy = shown + rng.normal(size=shown.shape) * noise * scale
      noisy[:, 0] = shown[:, 0]
      shown = noisy
  return [[[round(float(v), 4) for v in s] for s in traj] for traj in shown]


def shown_trajectories(question: str) -> list[list[list[float]]]:
  """The observed trajectories parsed back from a question (for the fitted baselines)."""
  out: list[list[list[float]]] = []
  for line in question.splitlines():
    if line.startswith("Observed trajectory"):
      out.append([])
    elif line.startswith("t=") and out:
      body = line.split(": ", 1)[1].strip("[]")
      out[-1].append([float(v) for v in body.split(",")])
  return out


def linear_program(question: str, discrete: bool) -> str:
  """`step` as the affine map s' = A s + b fitted by least squares to the shown steps."""
  shown = [np.asarray(t) for t in shown_trajectories(question)]
  x = np.concatenate([t[:-1] for t in shown])
  y = np.concatenate([t[1:] for t in shown])
  design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)  # [dim + 1, dim]
  a = [[round(float(v), 6) for v in row] for row in coef[:-1].T]
  b = [round(float(v), 6) for v in coef[-1]]
  out = "1.0 if v > 0.5 else 0.0" if discrete else "v"
  return (
    f"A = {a!r}\nB = {b!r}\n\n"
    "def step(state, dt):\n"
    "  s = [float(v) for v in state]\n"
    "  nxt = [sum(a * v for a, v in zip(row, s)) + c for row, c in zip(A, B)]\n"
    f"  return [{out} for v in nxt]\n"
  )


def baseline_programs(example: Mapping[str, Any]) -> dict[str, str]:
  """The reference predictors for one problem, as programs for the same verifier."""
  discrete = systems.get_system(example["system"]).discrete
  return {
    "constant": f"```python\n{CONSTANT_PROGRAM}```",
    "linear": f"```python\n{linear_program(example['question'], discrete)}```",
  }
