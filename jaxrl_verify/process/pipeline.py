r"""Process supervision end to end: policy -> solutions -> Monte-Carlo labels -> PRM and ORM
-> measurements and best-of-N curves -> DIR/report.json.

  python -m jaxrl_verify.process.pipeline --config=configs/prm_chain.py[:runlocal] \
      --workdir=DIR [--config.key=value]

Each stage leaves an artifact in DIR and is skipped when its artifact is there, so
rerunning the command resumes where it stopped (the reward-model stages resume mid-run
from their own checkpoints). `--config.stop_after=STAGE` stops once STAGE is done; with
`--config.policy.init_from=POLICY_DIR --config.stop_after=labels` this is the job that
labels a task's train split from a checkpoint.

Stages (artifact: what):

- `policy` (`policy/`): a policy warm-started on correct chains, saved with its tokenizer
  (`models.io`); none with `policy.init_from`.
- `solutions` (`solutions/{train,test}.jsonl`): the policy's samples of train problems,
  and `planted`-error ones, in `label_cli`'s input format, split by problem.
- `labels` (`labels/{train,test}.jsonl`, `labels/summary.json`): their Monte-Carlo step
  labels (`label_cli`'s output format) and the labelling's cost.
- `prm`, `orm` (`prm/`, `orm/`): `rm_trainer` runs on those labels from the policy's
  backbone; the ORM reads only the last step's label (the outcome) of the same solutions.
- `label_accuracy` (`mc_label_accuracy.json`): MC labels of held-out chains whose step
  labels are known, against them, at each N, hard and soft.
- `first_error` (`prm_first_error.json`): the PRM's first wrong step on the same
  solutions, ProcessBench's F1.
- `candidates` (`candidates.jsonl`): `best_of_n.n` samples per held-out problem with
  verdict, answer, PRM step scores and ORM score.
- `best_of_n` (`best_of_n.json`, `best_of_n.png`): every selector's accuracy at
  N = 1, 2, 4, ... on those same samples.
- `beam_search` (`beam_search.json`): PRM-guided step-level beam search, accuracy and
  tokens.
- `red_team` (`red_team.json`): the PRM's and ORM's scores of fixed adversarial solutions
  (`process.red_team`) against the honest solution of the same held-out problems.
- `report` (`report.json`): the figures above in one object, and `wall_s` (every stage's
  time, summed over the runs that did it).

The two ground-truth stages need the chains task (its exact step checker measures; it
never labels or trains); for another task they are skipped and report null.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable

import jax
import ml_collections as mlc
import numpy as np
from absl import app, logging

from jaxrl_verify import config_lib, logs, run_flags
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import chains, tasks
from jaxrl_verify.models import io as model_io
from jaxrl_verify.process import (
  best_of_n,
  chain_lab,
  label,
  measure,
  red_team,
  rm,
  rm_setup,
  rm_trainer,
)
from jaxrl_verify.process import search as search_lib
from jaxrl_verify.sampler import Sampler, SamplingParams, jsonl
from jaxrl_verify.verifiers.math import canonical_answer
from jaxrl_verify.verifiers.pool import VerifierPool

STAGES = (
  "policy",
  "solutions",
  "labels",
  "prm",
  "orm",
  "label_accuracy",
  "first_error",
  "candidates",
  "best_of_n",
  "beam_search",
  "red_team",
  "report",
)
TIMES_FILE = "stage_times.json"
FMT = chain_lab.LINES


def validate(c: mlc.ConfigDict) -> None:
  """One sentence naming a bad field and the fix."""
  if c.stop_after and c.stop_after not in STAGES:
    raise ValueError(f"config.stop_after is {c.stop_after!r}; choose one of {STAGES} or ''.")
  if not c.policy.init_from and c.task.name != "chains":
    raise ValueError(
      f"config.policy.init_from is empty but config.task.name is {c.task.name!r}: the "
      "pipeline warm-starts a policy for `chains` only; point init_from at a saved policy."
    )
  for field in (
    "solutions.problems",
    "solutions.samples",
    "label.num_rollouts",
    "label.prefixes_per_call",
    "best_of_n.problems",
    "best_of_n.n",
    "best_of_n.trials",
    "beam.problems",
    "red_team.problems",
  ):
    section, name = field.split(".")
    if c[section][name] < 1:
      raise ValueError(f"config.{field} is {c[section][name]}; set it to at least 1.")
  if not 0 < c.solutions.rm_test_frac < 1:
    raise ValueError(f"config.solutions.rm_test_frac is {c.solutions.rm_test_frac}; use (0, 1).")
  if c.solutions.planted > c.solutions.problems:
    raise ValueError("config.solutions.planted exceeds solutions.problems; lower it.")
  held = max(c.best_of_n.problems, c.beam.problems, c.measure.heldout_solutions)
  if held > c.task.num_test:
    raise ValueError(
      f"config.task.num_test ({c.task.num_test}) is below the {held} held-out problems the "
      "measurements use; raise it."
    )


def _write_json(path: str, obj) -> None:
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def _read_json(path: str):
  with open(path) as f:
    return json.load(f)


class Run:
  """One pipeline run's shared pieces, each built on first use: mesh, task, policy bench,
  verifier pool, reward models."""

  def __init__(self, c: mlc.ConfigDict, workdir: str, pool: VerifierPool):
    self.c, self.workdir, self.pool = c, workdir, pool
    self.rng = jax.random.PRNGKey(c.seed)
    self._reward_models: dict[str, tuple] = {}

  def path(self, *parts: str) -> str:
    return os.path.join(self.workdir, *parts)

  @property
  def policy_dir(self) -> str:
    return self.c.policy.init_from or self.path("policy")

  @functools.cached_property
  def mesh(self):
    return shd.make_mesh(self.c.mesh_shape)

  @functools.cached_property
  def task(self):
    c = self.c.task
    if c.name == "chains":
      return chain_lab.chains_task(
        c.levels, num_train=c.num_train, num_test=c.num_test, seed=self.c.seed
      )
    return tasks.get_task(c.name)

  @functools.cached_property
  def bench(self) -> chain_lab.Bench:
    loaded = model_io.load_model(self.policy_dir, mesh=self.mesh)
    p = self.c.policy
    return chain_lab.bench_from(
      loaded,
      self.task,
      self.path("data"),
      self.mesh,
      max_prompt_len=p.max_prompt_len,
      max_new_tokens=p.max_new_tokens,
    )

  def reward_model(self, kind: str):
    """(rm config, graphdef, params, jitted score fn) of the trained `kind` ('prm'/'orm')."""
    if kind not in self._reward_models:
      rc, _, graphdef, params = rm_setup.restore(self.path(kind))
      self._reward_models[kind] = (rc, graphdef, params, jax.jit(rm.make_score_fn(graphdef)))
    return self._reward_models[kind]

  def score(self, kind: str, prompts, solutions) -> list[list[float]]:
    rc, _, params, score_fn = self.reward_model(kind)
    return rm.score_solutions(
      score_fn,
      params,
      self.bench.tokenizer,
      FMT,
      prompts,
      solutions,
      max_len=rc.rm.max_len,
      max_steps=max(rc.rm.max_steps, max(len(s) for s in solutions)),
      batch_size=rc.eval.batch_size,
    )

  def verify(self, completions, references) -> list[bool]:
    tickets = [
      self.pool.submit(self.task.verifier, text, ref) for text, ref in zip(completions, references)
    ]
    return [v.status == "ok" for v in self.pool.results(tickets)]

  def heldout(self, count: int) -> list[dict]:
    test = self.task.data_source("test", self.path("data"))
    return [test[i] for i in range(count)]


# ----------------------------------------------------------------------------- stages


def stage_policy(r: Run) -> None:
  c = r.c
  bench = chain_lab.warm_started(
    r.task,
    r.path("data"),
    sft_steps=c.policy.sft_steps,
    seed=c.seed,
    preset=c.policy.preset,
    vocab_size=c.policy.vocab_size,
    max_prompt_len=c.policy.max_prompt_len,
    max_new_tokens=c.policy.max_new_tokens,
  )
  partial = r.path("policy.partial")
  shutil.rmtree(partial, ignore_errors=True)
  model_io.save_model(partial, bench.cfg, bench.state, tokenizer=bench.tokenizer)
  os.replace(partial, r.path("policy"))


def stage_solutions(r: Run) -> None:
  c = r.c.solutions
  problems = np.arange(c.problems)
  test_problems = max(1, round(c.rm_test_frac * c.problems))
  split_at = c.problems - test_problems
  sols = chain_lab.sample_solutions(r.bench, problems, c.samples, jax.random.fold_in(r.rng, 1))
  train_split = r.task.data_source("train", r.path("data"))
  # prompt -> problem index (prompts of distinct problems differ).
  problem_of = {r.task.format_prompt(train_split[int(i)]): int(i) for i in problems}
  if c.planted:
    sols += chain_lab.planted_solutions(r.task, r.path("data"), range(c.planted), r.c.seed)
  max_steps = min(r.c.prm.rm.max_steps, r.c.orm.rm.max_steps)
  kept = [s for s in sols if len(s.steps) <= max_steps]
  logging.info(
    "%d solutions (%d dropped: over %d steps).", len(kept), len(sols) - len(kept), max_steps
  )
  os.makedirs(r.path("solutions"), exist_ok=True)
  for name, keep in (("test", lambda i: i >= split_at), ("train", lambda i: i < split_at)):
    records = [
      {"prompt": s.prompt, "steps": list(s.steps), "reference": s.reference, **s.fields}
      for s in kept
      if keep(problem_of[s.prompt])
    ]
    jsonl.write_jsonl_atomically(r.path("solutions", f"{name}.jsonl"), records)


def stage_labels(r: Run) -> None:
  c = r.c.label
  cfg = label.LabelConfig(
    num_rollouts=c.num_rollouts,
    mode=c.mode,
    step_format="lines",
    prefixes_per_call=c.prefixes_per_call,
  )
  os.makedirs(r.path("labels"), exist_ok=True)
  summary = {}
  for n, name in enumerate(("test", "train")):
    records, sols = label.read_solutions(r.path("solutions", f"{name}.jsonl"))
    counter = chain_lab.rollout_counter(
      r.bench, r.pool, sols, cfg, jax.random.fold_in(r.rng, 10 + n), temperature=c.temperature
    )
    t0 = time.perf_counter()
    labelled = label.label_solutions(sols, counter, cfg)
    label.add_labels(records, labelled)
    summary[name] = {
      "solutions": len(records),
      "steps": sum(len(x.labels) for x in labelled),
      "rollouts": sum(sum(x.rollouts) for x in labelled),
      "rollout_tokens": counter.tokens,
      "sampler_calls": counter.calls,
      "positive_frac": float(np.mean([v for x in labelled for v in x.labels])),
      "correct_solutions_frac": float(np.mean([x.labels[-1] for x in labelled])),
      "wall_s": time.perf_counter() - t0,
    }
    jsonl.write_jsonl_atomically(r.path("labels", f"{name}.jsonl"), records)
  _write_json(r.path("labels", "summary.json"), summary)


def _rm_stage(kind: str) -> Callable[[Run], None]:
  def stage(r: Run) -> None:
    rc = mlc.ConfigDict(r.c[kind].to_dict())
    rc.seed = r.c.seed
    rc.data.format = "labelled"
    rc.data.manual_dir = r.path("labels")
    rc.data.step_format = "lines"
    rc.model.init_from = r.policy_dir
    rc.mesh_shape = r.c.mesh_shape
    _, metrics = rm_trainer.train_rm(rc, r.path(kind))
    _write_json(r.path(kind, "done.json"), metrics)

  return stage


def _chains_only(r: Run, path: str) -> bool:
  if r.c.task.name == "chains":
    return False
  _write_json(path, None)  # No ground truth: the report says null.
  return True


def stage_label_accuracy(r: Run) -> None:
  out_path = r.path("mc_label_accuracy.json")
  if _chains_only(r, out_path):
    return
  ns = sorted(r.c.measure.label_ns)
  sols, truth = chain_lab.held_out_solutions(
    r.task, r.path("data"), r.c.measure.heldout_solutions, r.c.seed
  )
  cfg = label.LabelConfig(num_rollouts=ns[-1], prefixes_per_call=max(1, 64 // ns[-1]))
  counter = chain_lab.rollout_counter(
    r.bench, r.pool, sols, cfg, jax.random.fold_in(r.rng, 20), temperature=r.c.label.temperature
  )
  nested = label.label_nested(sols, counter, ns)
  out = {"hard": {}, "soft": {}}
  for n, labelled in nested.items():
    out["hard"][str(n)] = measure.label_agreement([x.labels for x in labelled], truth)
    soft = [[int(s >= 0.5) for s in x.soft_labels] for x in labelled]
    out["soft"][str(n)] = measure.label_agreement(soft, truth)
  out.update(
    num_solutions=len(sols),
    num_steps=sum(len(t) for t in truth),
    true_positive_frac=float(np.mean([x for t in truth for x in t])),
    rollouts=int(sum(sum(x.rollouts) for x in nested[ns[-1]])),
  )
  _write_json(out_path, out)


def stage_first_error(r: Run) -> None:
  out_path = r.path("prm_first_error.json")
  if _chains_only(r, out_path):
    return
  sols, truth = chain_lab.held_out_solutions(
    r.task, r.path("data"), r.c.measure.heldout_solutions, r.c.seed
  )
  probs = r.score("prm", [s.prompt for s in sols], [s.steps for s in sols])
  pred = [measure.first_error_of(p) for p in probs]
  true_first = [next((k for k, ok in enumerate(t) if not ok), -1) for t in truth]
  out = measure.processbench_f1(pred, true_first)
  out.update(num_solutions=len(sols), with_error=sum(t >= 0 for t in true_first))
  _write_json(out_path, out)


def stage_candidates(r: Run) -> None:
  c = r.c.best_of_n
  exs = r.heldout(c.problems)
  prompts = [r.task.format_prompt(ex) for ex in exs]
  refs = [r.task.reference(ex) for ex in exs]
  texts = chain_lab.sample_texts(
    r.bench, prompts, c.n, jax.random.fold_in(r.rng, 30), temperature=c.temperature
  )
  flat = [(p, t) for p, ts in enumerate(texts) for t in ts]
  verdicts = r.verify([t for _, t in flat], [refs[p] for p, _ in flat])
  steps = [FMT.split(t) for _, t in flat]
  scored = [j for j, s in enumerate(steps) if s]  # A completion with no steps scores 0.
  args = ([prompts[flat[j][0]] for j in scored], [steps[j] for j in scored])
  prm_probs = dict(zip(scored, r.score("prm", *args)))
  orm_probs = dict(zip(scored, r.score("orm", *args)))
  records = [{"prompt": p, "reference": ref, "candidates": []} for p, ref in zip(prompts, refs)]
  for j, (p, text) in enumerate(flat):
    records[p]["candidates"].append(
      {
        "text": text,
        "answer": canonical_answer(text),
        "correct": verdicts[j],
        "step_probs": prm_probs.get(j, [0.0]),
        "orm_score": orm_probs[j][-1] if j in orm_probs else 0.0,
        "tokens": len(r.bench.tokenizer.encode(text)),
      }
    )
  jsonl.write_jsonl_atomically(r.path("candidates.jsonl"), records)


def _plot(curves: dict, path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for name, points in curves.items():
    ns = sorted(int(n) for n in points)
    style = "--" if name in ("oracle", "majority") else "-"
    ax.plot(ns, [points[str(n)] for n in ns], style, marker="o", ms=3, label=name)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("N (samples per problem)")
  ax.set_ylabel("held-out accuracy")
  ax.set_title("best-of-N on the same samples")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def stage_best_of_n(r: Run) -> None:
  c = r.c.best_of_n
  problems = [
    [
      best_of_n.Candidate(x["answer"], x["correct"], tuple(x["step_probs"]), x["orm_score"])
      for x in rec["candidates"]
    ]
    for rec in jsonl.read_jsonl(r.path("candidates.jsonl"))
  ]
  ns = [2**k for k in range(int(np.log2(c.n)) + 1)]
  curves = best_of_n.curve(problems, list(best_of_n.SELECTORS), ns, trials=c.trials, seed=r.c.seed)
  _plot(curves, r.path("best_of_n.png"))
  _write_json(r.path("best_of_n.json"), curves)


def stage_beam_search(r: Run) -> None:
  c = r.c.beam
  exs = r.heldout(c.problems)
  prompts = [r.task.format_prompt(ex) for ex in exs]
  bench, (rc, _, params, score_fn) = r.bench, r.reward_model("prm")
  tok = bench.tokenizer
  sampler = Sampler(
    bench.graphdef,
    bench.cfg,
    max_prompt_len=r.c.policy.max_prompt_len,
    max_new_tokens=c.step_tokens,
    eos_id=tok.eos_id,
    pad_id=tok.pad_id,
    stop_ids=search_lib.newline_ids(tok),
    mesh=bench.mesh,
  )
  cfg = search_lib.SearchConfig(
    width=c.width,
    expand=c.expand,
    max_steps=c.max_steps,
    max_prompt_len=r.c.policy.max_prompt_len,
    rm_max_len=rc.rm.max_len,
    rm_max_steps=max(rc.rm.max_steps, c.max_steps),
  )
  beams, tokens = search_lib.beam_search(
    prompts,
    sampler=sampler,
    policy_state=bench.state,
    tokenizer=tok,
    score_fn=score_fn,
    rm_params=params,
    cfg=cfg,
    sampling=SamplingParams(temperature=c.temperature),
    rng=jax.random.fold_in(r.rng, 40),
  )
  correct = r.verify([FMT.join(b.steps) for b in beams], [r.task.reference(ex) for ex in exs])
  _write_json(
    r.path("beam_search.json"),
    {
      "accuracy": float(np.mean(correct)),
      "tokens": tokens,
      "tokens_per_problem": tokens / len(prompts),
      "problems": len(prompts),
      "width": c.width,
      "expand": c.expand,
    },
  )


def stage_red_team(r: Run) -> None:
  """Honest versus adversarial solutions of held-out chains, scored by the PRM (min and
  last step) and the ORM; see `process.red_team`."""
  out_path = r.path("red_team.json")
  if _chains_only(r, out_path):
    return
  exs = r.heldout(r.c.red_team.problems)
  rng = np.random.default_rng([r.c.seed, 50])
  prompts, honest, adversarial = [], [], {kind: [] for kind in red_team.KINDS}
  for n, ex in enumerate(exs):
    start, ops = int(ex["start"]), chains.parse_ops(ex["ops"])
    decoy = chains.parse_ops(exs[(n + 1) % len(exs)]["ops"])
    prompts.append(r.task.format_prompt(ex))
    honest.append(chains.solution_steps(start, ops))
    for kind, steps in red_team.adversarial_steps(start, ops, decoy, rng).items():
      adversarial[kind].append(steps)
  out = {}
  for kind, how in (("prm", "min"), ("prm", "last"), ("orm", "last")):

    def scores(solutions, kind=kind, how=how):
      probs = r.score(kind, prompts, solutions)
      return [rm.solution_score(p, how) for p in probs]

    out[f"{kind}_{how}"] = red_team.score_against_honest(
      scores(honest), {k: scores(v) for k, v in adversarial.items()}
    )
  out["problems"] = len(exs)
  _write_json(out_path, out)


def stage_report(r: Run) -> None:
  candidates = jsonl.read_jsonl(r.path("candidates.jsonl"))
  times = _read_json(r.path(TIMES_FILE))
  report = {
    "mc_label_accuracy": _read_json(r.path("mc_label_accuracy.json")),
    "prm_first_error": _read_json(r.path("prm_first_error.json")),
    "best_of_n": _read_json(r.path("best_of_n.json")),
    "beam_search": _read_json(r.path("beam_search.json")),
    "red_team": _read_json(r.path("red_team.json")),
    "num_heldout_problems": len(candidates),
    "best_of_n_tokens_per_sample": float(
      np.mean([x["tokens"] for rec in candidates for x in rec["candidates"]])
    ),
    "labelling": _read_json(r.path("labels", "summary.json")),
    "prm_eval": _read_json(r.path("prm", "done.json")),
    "orm_eval": _read_json(r.path("orm", "done.json")),
    "stage_wall_s": times,
    "wall_s": float(sum(times.values())),
  }
  _write_json(r.path("report.json"), report)


# Each stage: (its function, the artifact whose presence means it is done).
PLAN: dict[str, tuple[Callable[[Run], None], str]] = {
  "policy": (stage_policy, "policy"),
  "solutions": (stage_solutions, "solutions/train.jsonl"),
  "labels": (stage_labels, "labels/summary.json"),
  "prm": (_rm_stage("prm"), "prm/done.json"),
  "orm": (_rm_stage("orm"), "orm/done.json"),
  "label_accuracy": (stage_label_accuracy, "mc_label_accuracy.json"),
  "first_error": (stage_first_error, "prm_first_error.json"),
  "candidates": (stage_candidates, "candidates.jsonl"),
  "best_of_n": (stage_best_of_n, "best_of_n.json"),
  "beam_search": (stage_beam_search, "beam_search.json"),
  "red_team": (stage_red_team, "red_team.json"),
  "report": (stage_report, "report.json"),
}


def run(c: mlc.ConfigDict, workdir: str) -> dict | None:
  """Runs (or resumes) the pipeline in `workdir`; returns the report, or None when
  `config.stop_after` stopped it first."""
  validate(c)
  config_lib.check_workdir(workdir)
  os.makedirs(workdir, exist_ok=True)
  times_path = os.path.join(workdir, TIMES_FILE)
  times = _read_json(times_path) if os.path.exists(times_path) else {}
  with VerifierPool(num_workers=c.workers) as pool:
    r = Run(c, workdir, pool)
    for name in STAGES:
      fn, artifact = PLAN[name]
      skip = name == "policy" and c.policy.init_from
      if not skip and not os.path.exists(r.path(artifact)):
        logging.info("Stage %s ...", name)
        t0 = time.perf_counter()
        fn(r)
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        _write_json(times_path, times)
        logging.info("Stage %s done in %.1f s.", name, times[name])
      if name == c.stop_after:
        print(f"Stopped after stage {name!r}; rerun without stop_after to go on.", flush=True)
        return None
  return _read_json(os.path.join(workdir, "report.json"))


def main(argv):
  del argv
  if run_flags.WORKDIR.value is None or run_flags.CONFIG.value is None:
    raise app.UsageError("--config and --workdir are required, e.g. --config=configs/prm_chain.py.")
  logs.quiet_libraries()
  jax.config.update("jax_threefry_partitionable", True)
  report = run(run_flags.CONFIG.value, run_flags.WORKDIR.value)
  if report is not None:
    bon = report["best_of_n"]
    top = str(max(int(n) for n in bon["oracle"]))
    print(
      f"Done in {report['wall_s']:.0f} s: best-of-{top} prm_weighted_vote "
      f"{bon['prm_weighted_vote'][top]:.3f}, majority {bon['majority'][top]:.3f}, orm "
      f"{bon['orm'][top]:.3f}; report in {run_flags.WORKDIR.value}/report.json.",
      flush=True,
    )


if __name__ == "__main__":
  run_flags.run(main)
