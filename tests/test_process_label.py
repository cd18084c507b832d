"""Steps and Monte-Carlo step labels: segmentation, both label modes, the binary search
(against brute force), and the real labeller (sampler + pool) on a warm-started policy."""

import dataclasses
import itertools

import jax
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify import sft
from jaxrl_verify import sharding as shd
from jaxrl_verify.data import chains, pipeline, tasks
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.process import label, steps
from jaxrl_verify.sampler import Sampler, SamplingParams
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer
from jaxrl_verify.verifiers.pool import VerifierPool

GOLD = ["7 + 5 = 12.", "12 - 3 = 9.", "9 * 2 = 18.", "\\boxed{18}"]


@pytest.mark.parametrize("name", ["lines", "sentences", "step_prefix"])
def test_formats_round_trip(name):
  fmt = steps.step_format(name)
  assert steps.split_steps(fmt.join(GOLD), fmt) == GOLD
  text, ends = steps.step_char_ends(GOLD, fmt)
  assert [text[e - len(s) : e] for s, e in zip(GOLD, ends)] == GOLD
  assert steps.split_steps(steps.prefix_text(GOLD, 1, fmt) + "9 * 2 = 18.", fmt) == GOLD[:3]


def test_format_specifics_and_bad_input():
  assert steps.step_format("lines").split("a\n\n  \nb\n") == ["a", "b"]
  assert steps.step_format("sentences").split("It costs 3.5 dollars. Then 2! Done?") == [
    "It costs 3.5 dollars.",
    "Then 2!",
    "Done?",
  ]
  assert steps.step_format("step_prefix").split("Step 1: a b\nStep 2: c") == ["a b", "c"]
  assert steps.prefix_text(["a", "b"], 0, steps.step_format("step_prefix")) == "Step 1: a\nStep 2: "
  ms = steps.step_format("delimiter", " ки ")
  assert ms.split("x = 1 ки y = 2 ки") == ["x = 1", "y = 2"]
  with pytest.raises(ValueError, match="has no steps"):
    steps.split_steps(" \n ", steps.step_format("lines"))
  with pytest.raises(ValueError, match="needs a non-empty delimiter"):
    steps.step_format("delimiter")
  with pytest.raises(ValueError, match="Unknown step format 'paragraphs'"):
    steps.step_format("paragraphs")
  with pytest.raises(ValueError, match="has no steps"):
    label.Solution("Q", (), "1")


@pytest.fixture(scope="module")
def chain_setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("chains")
  task = tasks.get_task("chains", num_train=1000, num_test=16, difficulty=(1,))
  tok = SentencePieceTokenizer.train(pipeline.texts_for_tokenizer(task, root), 320, root)
  return task, root, tok


def test_step_end_positions_cover_each_step(chain_setup):
  _, _, tok = chain_setup
  fmt = steps.step_format("lines")
  ids, ends = steps.step_end_positions(tok, GOLD, fmt)
  assert ids == tok.encode(fmt.join(GOLD)) and ends[-1] == len(ids) - 1
  assert all(a < b for a, b in zip(ends, ends[1:]))
  text, char_ends = steps.step_char_ends(GOLD, fmt)
  for k, end in enumerate(ends):  # Token `end` completes step k's text, token end - 1 does not
    # (a token may also carry the separator after it, e.g. ".\n").
    assert text[: char_ends[k]] in tok.decode(ids[: end + 1]), k
    assert len(tok.decode(ids[:end])) < char_ends[k], k
  # With the trailing separator a step ends on the same token in a partial solution as in
  # the whole one (here `.\n` is one token: without it the partial one would end on `.`).
  ids_p, ends_p = steps.step_end_positions(tok, GOLD[:2], fmt, trailing_separator=True)
  ids_f, ends_f = steps.step_end_positions(tok, GOLD, fmt, trailing_separator=True)
  assert ids_f[: len(ids_p)] == ids_p and ends_f[:2] == ends_p


# ----------------------------------------------------------------------------- planners


def _solutions(lengths):
  return [
    label.Solution(f"Q{i}", tuple(f"s{j}" for j in range(n)), "1") for i, n in enumerate(lengths)
  ]


def _table_counter(table, calls):
  def count(requests):
    calls.append(list(requests))
    return np.array([table[i][k] for i, k in requests])

  return count


def test_full_labels_are_any_and_fraction_of_rollouts():
  sols = _solutions([3, 2])
  table = {0: [4, 1], 1: [0]}  # Correct rollouts of 4 at each non-final prefix.
  calls = []
  out = label.label_full(sols, [True, False], _table_counter(table, calls), 4)
  assert len(calls) == 1 and sorted(calls[0]) == [(0, 0), (0, 1), (1, 0)]
  assert out[0] == label.StepLabels([1, 1, 1], [1.0, 0.25, 1.0], [4, 4, 0])
  assert out[1] == label.StepLabels([0, 0], [0.0, 0.0], [4, 0])


def test_binary_search_equals_brute_force_on_monotone_labels():
  rng = np.random.default_rng(0)
  for _ in range(200):
    lengths = rng.integers(1, 10, size=5)
    sols = _solutions(lengths)
    first_zero = [int(rng.integers(0, n + 1)) for n in lengths]  # n: no zero (correct)
    table = {
      i: [int(rng.integers(1, 5)) if k < z else 0 for k in range(n - 1)]
      for i, (n, z) in enumerate(zip(lengths, first_zero))
    }
    finals = [z == n for n, z in zip(lengths, first_zero)]
    full = label.label_full(sols, finals, _table_counter(table, []), 4)
    calls = []
    fast = label.label_binary_search(sols, finals, _table_counter(table, calls), 4)
    for f, b, n in zip(full, fast, lengths):
      assert b.labels == f.labels
      assert sum(b.rollouts) <= sum(f.rollouts)
      assert all(bs is None or bs == fs for bs, fs in zip(b.soft_labels, f.soft_labels))
      assert sum(r > 0 for r in b.rollouts) <= int(np.ceil(np.log2(n))) if n > 1 else True
    assert len(calls) <= int(np.ceil(np.log2(max(lengths))))  # One call per round.


def test_binary_search_finds_a_boundary_when_labels_are_not_monotone():
  sols = _solutions([6])
  table = {0: [0, 3, 0, 2, 0]}  # Zeros at 0, 2, 4: the search stops at one of them.
  out = label.label_binary_search(sols, [False], _table_counter(table, []), 4)
  z = out[0].labels.index(0)
  assert table[0][z] == 0 and (z == 0 or table[0][z - 1] > 0)


# ----------------------------------------------------------------------------- the real labeller


@pytest.fixture(scope="module")
def policy(chain_setup):
  """A small policy warm-started on correct 3-step chains: it learns the format and to box
  the last value, not all the arithmetic, so labels differ between prefixes (about 30 s)."""
  task, root, tok = chain_setup
  cfg = get_preset(
    "tiny", vocab_size=384, num_valid_tokens=tok.vocab_size, embed_dim=64, head_dim=16, mlp_dim=256
  )
  mesh = shd.make_mesh((-1, 1, 1), devices=jax.devices()[:2])
  graphdef, state, _ = shd.create_sharded(lambda: Transformer(cfg, rngs=nnx.Rngs(0)), mesh)
  pairs = list(pipeline.sft_examples(task, "train", data_dir=root, seed=0))
  state = sft.warm_start(
    graphdef,
    state,
    pairs,
    tok,
    steps=400,
    batch_size=16,
    learning_rate=3e-3,
    max_len=96,
    mesh=mesh,
  )
  sampler = Sampler(
    graphdef,
    cfg,
    max_prompt_len=112,
    max_new_tokens=24,
    eos_id=tok.eos_id,
    pad_id=tok.pad_id,
    mesh=mesh,
  )
  return sampler, state, mesh


def _chain_solutions(task, root, count):
  test = task.data_source("test", root)
  rng = np.random.default_rng(1)
  out, truth = [], []
  for i in range(count):
    ex = test[i]
    start, ops = int(ex["start"]), chains.parse_ops(ex["ops"])
    solution = (
      chains.solution_steps(start, ops)
      if i % 2 == 0
      else chains.corrupt(start, ops, rng, kind=chains.ERROR_KINDS[i % 3], at=i % len(ops))
    )
    out.append(label.Solution(task.format_prompt(ex), tuple(solution), ex["answer"]))
    truth.append(chains.step_labels(start, ops, solution))
  return out, truth


def test_real_labeller_full_and_binary_search_agree_under_greedy_rollouts(chain_setup, policy):
  task, root, tok = chain_setup
  sampler, state, mesh = policy
  sols, truth = _chain_solutions(task, root, 8)
  with VerifierPool(num_workers=2) as pool:
    results = {}
    for mode in label.MODES:
      cfg = label.LabelConfig(num_rollouts=4, mode=mode, prefixes_per_call=4)
      counter = label.RolloutCounter(
        sampler,
        state,
        tok,
        pool,
        "math",
        sols,
        cfg,
        sampling=SamplingParams(temperature=0.0),
        rng=jax.random.PRNGKey(0),
        mesh=mesh,
      )
      results[mode] = (label.label_solutions(sols, counter, cfg), counter)
    # A naive reference: each prefix sampled on its own, no shared prefill (two identical
    # rows, as the mesh has two batch devices), then verified.
    reference = {}
    fmt = steps.step_format("lines")
    for i, s in enumerate(sols):
      for k in range(len(s.steps) - 1):
        prefix = steps.prefix_text(s.steps, k, fmt)
        ids = tok.encode(s.prompt, add_bos=True) + tok.encode(prefix)
        tokens = np.full((2, 112), tok.pad_id, np.int32)
        tokens[:, 112 - len(ids) :] = ids
        rollout = sampler.generate(
          state,
          tokens,
          tokens != tok.pad_id,
          jax.random.PRNGKey(0),
          SamplingParams(temperature=0.0),
        )
        text = tok.decode_batch(np.asarray(rollout.tokens_gt), np.asarray(rollout.mask_gt))[0]
        reference[(i, k)] = int(
          pool.map([{"verifier": "math", "completion": prefix + text, "reference": s.reference}])[
            0
          ].status
          == "ok"
        )
  full, full_counter = results["full"]
  fast, fast_counter = results["binary_search"]
  n_prefixes = sum(len(s.steps) - 1 for s in sols)
  assert full_counter.calls == -(-n_prefixes // 4)  # Every prefix in ceil(P / 4) sampler calls.
  for i, (f, b, t) in enumerate(zip(full, fast, truth)):
    # Greedy rollouts of one prefix are identical: all N right or all wrong, and the same as
    # the prefix sampled on its own.
    soft = f.soft_labels[:-1]
    assert all(x in (0.0, 1.0) for x in soft), soft
    assert [int(x) for x in soft] == [reference[(i, k)] for k in range(len(soft))]
    assert f.labels[-1] == int(all(t))  # The last step: the solution's own verdict.
    monotone = all(a >= c for a, c in itertools.pairwise(f.labels))
    if monotone:
      assert b.labels == f.labels
  assert sum(map(sum, (b.rollouts for b in fast))) < sum(map(sum, (f.rollouts for f in full)))
  # Not vacuous: some prefixes are completed correctly and some are not.
  hard = [x for f in full for x in f.labels[:-1]]
  assert 0 < sum(hard) < len(hard), hard


def test_nested_labels_are_the_first_n_rollouts_of_one_run(chain_setup, policy):
  """label_nested at n = max(ns) is the plain full labelling with the same key; at smaller
  n it counts the first n of those rollouts (so hard labels can only rise with n)."""
  task, root, tok = chain_setup
  sampler, state, mesh = policy
  sols, _ = _chain_solutions(task, root, 6)
  cfg = label.LabelConfig(num_rollouts=4, prefixes_per_call=4)

  def counter(pool):
    return label.RolloutCounter(
      sampler,
      state,
      tok,
      pool,
      "math",
      sols,
      cfg,
      sampling=SamplingParams(temperature=1.0),
      rng=jax.random.PRNGKey(3),
      mesh=mesh,
    )

  with VerifierPool(num_workers=2) as pool:
    plain = label.label_solutions(sols, counter(pool), cfg)
    c = counter(pool)
    nested = label.label_nested(sols, c, [1, 2, 4])
    with pytest.raises(ValueError, match="samples 4 rollouts"):
      label.label_nested(sols, c, [1, 8])
  assert nested[4] == plain
  outcomes = c.last_outcomes
  requests = [(i, k) for i, s in enumerate(sols) for k in range(len(s.steps) - 1)]
  for n in (1, 2):
    for (i, k), o in zip(requests, outcomes):
      assert nested[n][i].soft_labels[k] == sum(o[:n]) / n
      assert nested[n][i].labels[k] <= nested[4][i].labels[k]
  soft4 = [x for lab in nested[4] for x in lab.soft_labels[:-1]]
  assert any(0 < x < 1 for x in soft4), soft4  # Not vacuous: sampled rollouts disagree.


def test_a_prefix_longer_than_the_context_is_a_clear_error(chain_setup, policy):
  task, root, tok = chain_setup
  sampler, state, mesh = policy
  long = label.Solution("Q: " + "Add 1. " * 60, ("1 + 1 = 2.", "\\boxed{2}"), "2")
  with VerifierPool(num_workers=1) as pool:
    counter = label.RolloutCounter(
      sampler,
      state,
      tok,
      pool,
      "math",
      [long],
      label.LabelConfig(num_rollouts=2),
      sampling=SamplingParams(),
      rng=jax.random.PRNGKey(0),
      mesh=mesh,
    )
    with pytest.raises(
      ValueError, match=r"take \d+ tokens, more than the sampler's max_prompt_len=112"
    ):
      label.label_solutions([long], counter, counter.cfg)


def test_label_cli_writes_labels_and_refuses_bad_input(chain_setup, policy, tmp_path, capsys):
  import json

  from jaxrl_verify.models import io as model_io
  from jaxrl_verify.process import label_cli

  task, root, tok = chain_setup
  sampler, state, _ = policy
  model_io.save_model(tmp_path / "policy", sampler.cfg, state, tokenizer=tok)
  sols, truth = _chain_solutions(task, root, 4)
  src = tmp_path / "in.jsonl"
  src.write_text(
    "".join(
      json.dumps({"prompt": s.prompt, "steps": list(s.steps), "reference": s.reference}) + "\n"
      for s in sols
    )
  )
  out = tmp_path / "out.jsonl"
  base = [
    "--checkpoint",
    str(tmp_path / "policy"),
    "--num-rollouts",
    "2",
    "--max-prompt-len",
    "112",
  ]
  argv = [*base, "--input", str(src), "--output", str(out), "--max-new-tokens", "24"]
  assert label_cli.main([*argv, "--mode", "binary_search", "--temperature", "0"]) == 0
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r["steps"] for r in rows] == [list(s.steps) for s in sols]
  for r, t in zip(rows, truth):
    assert len(r["labels"]) == len(r["soft_labels"]) == len(r["rollouts"]) == len(r["steps"])
    assert r["labels"][-1] == int(all(t)) and r["rollouts"][-1] == 0
  assert "labelled 4 solutions" in capsys.readouterr().err

  # Bad input: one sentence each, and nothing written under the output name.
  bad = tmp_path / "bad.jsonl"
  bad_out = tmp_path / "bad_out.jsonl"
  cases = {
    '{"prompt": "Q", "steps": [], "reference": "1"}': "line 1 has no steps",
    '{"prompt": "Q", "steps": ["a", " "], "reference": "1"}': "empty step (index 1)",
    '{"prompt": "Q", "steps": "a b", "reference": "1"}': 'needs "steps": a list of strings',
    '{"prompt": "Q", "steps": ["a"]}': 'needs "reference"',
    '{"prompt": "Q", "steps": ["a"], "reference": 1': "line 1 is not valid JSON",
  }
  for line, message in cases.items():
    bad.write_text(line + "\n")
    assert label_cli.main([*base, "--input", str(bad), "--output", str(bad_out)]) == 2
    assert message in capsys.readouterr().err and not bad_out.exists()
  assert label_cli.main([*argv, "--verifier", "nope"]) == 2
  assert "Unknown verifier 'nope'" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    label_cli.main([*base, "--input", str(src), "--output", str(src)])
  assert "is the input file" in capsys.readouterr().err


def test_prm_guided_beam_search_builds_scored_step_by_step_solutions(chain_setup, policy):
  from jaxrl_verify.models.transformer import ValueModel
  from jaxrl_verify.process import rm, search

  task, root, tok = chain_setup
  sampler, state, mesh = policy
  step_sampler = Sampler(
    sampler.graphdef,
    sampler.cfg,
    max_prompt_len=112,
    max_new_tokens=16,
    eos_id=tok.eos_id,
    stop_ids=search.newline_ids(tok),
    pad_id=tok.pad_id,
    mesh=mesh,
  )
  rm_graphdef, rm_params = nnx.split(ValueModel(sampler.cfg, rngs=nnx.Rngs(1)))
  score_fn = jax.jit(rm.make_score_fn(rm_graphdef))
  test = task.data_source("test", root)
  prompts = [task.format_prompt(test[i]) for i in range(2)]
  cfg = search.SearchConfig(
    width=2, expand=2, max_steps=5, max_prompt_len=112, rm_max_len=160, rm_max_steps=6
  )
  best, tokens = search.beam_search(
    prompts,
    sampler=step_sampler,
    policy_state=state,
    tokenizer=tok,
    score_fn=score_fn,
    rm_params=rm_params,
    cfg=cfg,
    sampling=SamplingParams(temperature=1.0),
    rng=jax.random.PRNGKey(0),
  )
  assert len(best) == 2 and tokens > 0
  for prompt, beam in zip(prompts, best):
    assert beam.done and 1 <= len(beam.steps) <= 5
    assert all(s and "\n" not in s for s in beam.steps)  # One line per step.
    # The beam's score is the min of the PRM's step scores of the whole solution.
    batch = rm.pack(
      tok, [prompt], [beam.steps], None, steps.step_format("lines"), max_len=160, max_steps=6
    )
    probs = np.asarray(score_fn(rm_params, batch))[0, : len(beam.steps)]
    assert beam.score == pytest.approx(float(probs.min()), rel=1e-4)
  # A PRM context too short for whole solutions: beams end where the next step would not
  # fit (never a crash), each still readable by the PRM.
  fmt = steps.step_format("lines")
  tight = max(rm.packed_length(tok, p, ["1 + 1 = 2."], fmt) for p in prompts)
  cfg = dataclasses.replace(cfg, rm_max_len=tight)
  best, _ = search.beam_search(
    prompts,
    sampler=step_sampler,
    policy_state=state,
    tokenizer=tok,
    score_fn=score_fn,
    rm_params=rm_params,
    cfg=cfg,
    sampling=SamplingParams(temperature=1.0),
    rng=jax.random.PRNGKey(1),
  )
  for prompt, beam in zip(prompts, best):
    assert beam.done
    assert not beam.steps or rm.packed_length(tok, prompt, beam.steps, fmt) <= tight
