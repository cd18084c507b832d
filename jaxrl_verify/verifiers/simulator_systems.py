"""The systems of the simulator domain: each one a program template with hidden constants.

A system is defined by its *reference program*: Python source of `step(state, dt) -> state`
with the hidden parameters filled in as module constants. The same source is

* the ground truth: the verifier executes our own generated reference in the parent process
  (never model output) to produce the held-out trajectories, so truth and the SFT
  demonstration cannot drift apart;
* the supervised demonstration (`reference_program`), and, with wrong constants, the warm
  start of the RL configs (`warm_start_program`).

The continuous systems integrate their ODE with classical RK4 on `SUBSTEPS` substeps per
`dt` (tests check them against closed forms and invariants, not against this code); the
bouncing ball is integrated exactly between impacts; the automaton and the heat grid are
discrete-time maps, so a program can match them exactly.

Pure Python on purpose: this module is imported by the verifier pool's workers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

SUBSTEPS = 10
State = list[float]

_RK4 = """
def step(state, dt):
  h = dt / {substeps}
  s = [float(v) for v in state]
  for _ in range({substeps}):
    k1 = deriv(s)
    k2 = deriv([a + h / 2 * b for a, b in zip(s, k1)])
    k3 = deriv([a + h / 2 * b for a, b in zip(s, k2)])
    k4 = deriv([a + h * b for a, b in zip(s, k3)])
    s = [a + h / 6 * (b + 2 * c + 2 * d + e) for a, b, c, d, e in zip(s, k1, k2, k3, k4)]
  return s
"""


@dataclasses.dataclass(frozen=True)
class System:
  """One system family.

  Attributes:
    name: registry name (the task field `system`).
    description: one or two sentences for the prompt: what the state holds, what is hidden.
    state_names: the components of the state, in order (fixed length `dim`) or a pattern
      (`cells`) for grid systems, whose length is the state's.
    params: the hidden constants, name -> (low, high) for uniform sampling.
    body: the program's dynamics: a `deriv(s)` for the RK4 systems, or the whole `step`.
    rk4: whether `body` is a `deriv` that the shared RK4 `step` integrates.
    dt: the time step shown and used in the held-out rollouts.
    discrete: states are exact integers (compared cell by cell).
    sample_state: `uniform -> initial state`; `uniform(lo, hi)` draws a float.
  """

  name: str
  description: str
  state_names: tuple[str, ...]
  params: Mapping[str, tuple[float, float]]
  body: str
  rk4: bool
  dt: float
  discrete: bool
  sample_state: Callable[[Callable[[float, float], float]], State]


def _spring_state(u):
  return [u(-2.0, 2.0), u(-2.0, 2.0)]


def _projectile_state(u):
  return [0.0, u(0.0, 5.0), u(2.0, 10.0), u(2.0, 10.0)]


def _lv_state(u):
  return [u(0.5, 3.0), u(0.5, 3.0)]


def _ball_state(u):
  return [u(1.0, 5.0), u(-2.0, 2.0)]


CA_WIDTH = 16
HEAT_CELLS = 12


def _ca_state(u):
  return [float(u(0.0, 1.0) < 0.5) for _ in range(CA_WIDTH)]


def _heat_state(u):
  return [round(max(0.0, u(-0.5, 1.0)), 3) for _ in range(HEAT_CELLS)]


SYSTEMS: dict[str, System] = {
  s.name: s
  for s in (
    System(
      name="spring",
      description=(
        "A unit mass on a damped spring: state [x, v] (position, velocity); the stiffness K "
        "and the damping C are unknown (acceleration = -K*x - C*v)."
      ),
      state_names=("x", "v"),
      params={"K": (1.0, 6.0), "C": (0.1, 0.8)},
      body="def deriv(s):\n  x, v = s\n  return [v, -K * x - C * v]\n",
      rk4=True,
      dt=0.1,
      discrete=False,
      sample_state=_spring_state,
    ),
    System(
      name="projectile",
      description=(
        "A projectile with quadratic air drag: state [x, y, vx, vy]; gravity G and the drag "
        "coefficient D are unknown (acceleration = -D*|v|*v - G in y). The ground is not "
        "modelled."
      ),
      state_names=("x", "y", "vx", "vy"),
      params={"G": (5.0, 15.0), "D": (0.01, 0.2)},
      body=(
        "def deriv(s):\n  x, y, vx, vy = s\n  speed = (vx * vx + vy * vy) ** 0.5\n"
        "  return [vx, vy, -D * speed * vx, -D * speed * vy - G]\n"
      ),
      rk4=True,
      dt=0.05,
      discrete=False,
      sample_state=_projectile_state,
    ),
    System(
      name="lotka_volterra",
      description=(
        "Predator and prey populations (Lotka-Volterra): state [prey, predator]; the rates "
        "A, B, P, Q are unknown (prey' = A*prey - B*prey*predator, "
        "predator' = P*prey*predator - Q*predator)."
      ),
      state_names=("prey", "predator"),
      params={"A": (0.8, 1.5), "B": (0.3, 0.7), "P": (0.2, 0.5), "Q": (0.8, 1.5)},
      body=(
        "def deriv(s):\n  prey, pred = s\n"
        "  return [A * prey - B * prey * pred, P * prey * pred - Q * pred]\n"
      ),
      rk4=True,
      dt=0.1,
      discrete=False,
      sample_state=_lv_state,
    ),
    System(
      name="bouncing_ball",
      description=(
        "A ball bouncing on the floor y = 0: state [y, v] (height, upward velocity); gravity "
        "G and the restitution E are unknown (at an impact the velocity becomes -E times "
        "itself)."
      ),
      state_names=("y", "v"),
      params={"G": (5.0, 15.0), "E": (0.5, 0.95)},
      body=(
        "def step(state, dt):\n  y, v = float(state[0]), float(state[1])\n  t = dt\n"
        "  for _ in range(100):\n"
        "    hit = (v + (v * v + 2 * G * max(y, 0.0)) ** 0.5) / G\n"
        "    if hit >= t:\n      return [y + v * t - G * t * t / 2, v - G * t]\n"
        "    v = -E * (v - G * hit)\n    y = 0.0\n    t -= hit\n"
        "    if v < 1e-6:\n      return [0.0, 0.0]\n"
        "  return [0.0, 0.0]\n"
      ),
      rk4=False,
      dt=0.05,
      discrete=False,
      sample_state=_ball_state,
    ),
    System(
      name="automaton",
      description=(
        f"An elementary cellular automaton on a ring of {CA_WIDTH} cells: state is the list "
        "of cells (0 or 1); the rule number RULE (0-255, Wolfram's numbering) is unknown. "
        "dt is ignored: one call is one generation."
      ),
      state_names=("cells",),
      params={"RULE": (0, 255)},
      body=(
        "def step(state, dt):\n  n = len(state)\n  c = [int(v) for v in state]\n"
        "  return [(RULE >> (4 * c[i - 1] + 2 * c[i] + c[(i + 1) % n])) & 1 "
        "for i in range(n)]\n"
      ),
      rk4=False,
      dt=1.0,
      discrete=True,
      sample_state=_ca_state,
    ),
    System(
      name="heat",
      description=(
        f"Heat diffusing along a rod of {HEAT_CELLS} cells held at 0 beyond both ends: state "
        "is the list of cell temperatures; the diffusion number ALPHA is unknown (each step "
        "adds ALPHA*dt*(left - 2*cell + right) to every cell)."
      ),
      state_names=("cells",),
      params={"ALPHA": (0.1, 0.45)},
      body=(
        "def step(state, dt):\n  u = [0.0] + [float(v) for v in state] + [0.0]\n"
        "  return [u[i] + ALPHA * dt * (u[i - 1] - 2 * u[i] + u[i + 1]) "
        "for i in range(1, len(u) - 1)]\n"
      ),
      rk4=False,
      dt=1.0,
      discrete=False,
      sample_state=_heat_state,
    ),
  )
}

# Elementary CA rules whose trajectories from random rings are neither constant nor a shift.
CA_RULES = (18, 22, 30, 45, 54, 60, 73, 90, 102, 105, 110, 122, 126, 146, 150, 184)


def get_system(name: str) -> System:
  if name not in SYSTEMS:
    raise ValueError(f"Unknown simulator system {name!r}; choose one of {sorted(SYSTEMS)}.")
  return SYSTEMS[name]


def _constant(value: float) -> str:
  return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def program(system: str, params: Mapping[str, float]) -> str:
  """The Python source of `step(state, dt)` for `system` with constants `params`."""
  sys_ = get_system(system)
  missing = sorted(set(sys_.params) - set(params))
  if missing:
    raise ValueError(f"System {system!r} needs parameters {missing}; got {sorted(params)}.")
  consts = "".join(f"{k} = {_constant(float(params[k]))}\n" for k in sys_.params)
  step = _RK4.format(substeps=SUBSTEPS) if sys_.rk4 else ""
  return consts + "\n" + sys_.body + step


def rollout(source: str, state: Sequence[float], n: int, dt: float) -> list[State]:
  """Runs the `step` of *our own* generated `source` for `n` steps from `state`.

  Returns the `n` states after each step (the initial state excluded). Only for sources
  made by `program`: this executes them in this process.
  """
  namespace: dict[str, Any] = {}
  exec(source, namespace)  # Our generated reference, never model output.
  step = namespace["step"]
  s = [float(v) for v in state]
  out = []
  for _ in range(int(n)):
    s = [float(v) for v in step(s, dt)]
    out.append(s)
  return out


def is_finite(states: Sequence[Sequence[float]]) -> bool:
  return all(math.isfinite(v) for s in states for v in s)
