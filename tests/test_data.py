"""Tasks, tfds builders and the prompt pipeline.

Answers are checked against independent references: Python's `fractions` for the
arithmetic data, sympy's equation solver for the linear equations, and the
countdown verifier (with its own rule checks) for the countdown solutions.
"""

import ast
import json
import operator
import re
from fractions import Fraction

import numpy as np
import pytest
import sympy
from sympy.parsing.sympy_parser import implicit_multiplication, parse_expr, standard_transformations

from jaxrl_verify.data import arithmetic, pipeline, synthetic, tasks
from jaxrl_verify.data.public import last_boxed
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer
from jaxrl_verify.types import PromptBatch
from jaxrl_verify.verifiers import base as verifiers_base
from jaxrl_verify.verifiers.countdown import verify as countdown_verify

SYNTHETIC = {"arithmetic": 5, "countdown": 4, "linear_equations": 4}  # name -> max level


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def load(name, data_dir, split="train", **options):
  options = {"size": "tiny", **options}
  return tasks.get_task(name, **options).data_source(split, data_dir)


def all_examples(examples):
  return [examples[i] for i in range(len(examples))]


# ------------------------------------------------------------------ builders


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_splits_sizes_no_overlap_determinism(name, data_dir, tmp_path):
  levels = list(range(1, SYNTHETIC[name] + 1))
  train = all_examples(load(name, data_dir, "train", difficulty=levels))
  test = all_examples(load(name, data_dir, "test", difficulty=levels))
  assert (len(train), len(test)) == (64, 16)
  assert not {e["question"] for e in train} & {e["question"] for e in test}
  assert len({e["question"] for e in train}) == 64
  assert {e["difficulty"] for e in train} == set(levels)
  for e in train:
    assert e["solution"].endswith("\\boxed{" + e["solution"].rsplit("\\boxed{", 1)[1])
  # Same seed, fresh directory -> the same examples; another seed -> others.
  again = all_examples(load(name, tmp_path, "train", difficulty=levels))
  assert sorted(again, key=lambda e: e["id"]) == sorted(train, key=lambda e: e["id"])
  other = all_examples(load(name, tmp_path, "train", difficulty=levels, seed=1))
  assert {e["question"] for e in other} != {e["question"] for e in train}


_OPS = {
  ast.Add: operator.add,
  ast.Sub: operator.sub,
  ast.Mult: operator.mul,
  ast.Div: operator.truediv,
}


def _fraction_eval(text):
  def walk(node):
    if isinstance(node, ast.Constant):
      return Fraction(node.value)
    return _OPS[type(node.op)](walk(node.left), walk(node.right))

  return walk(ast.parse(text, mode="eval").body)


def test_arithmetic_answers_are_exact(data_dir):
  examples = all_examples(load("arithmetic", data_dir, difficulty=[1, 2, 3, 4, 5]))
  assert any("/" in e["answer"] for e in examples)  # level 5 yields rational answers
  for e in examples:
    answer = Fraction(e["answer"])
    assert _fraction_eval(e["expression"]) == answer, e
    assert answer >= 0
    # Every worked step "x op y = z." is right, and they chain to the answer.
    steps = re.findall(r"(\S+) ([-+*/]) (\d+) = (\S+)\.", e["solution"])
    assert len(steps) == e["expression"].count("(")
    for x, op, y, z in steps:
      assert _fraction_eval(f"{x} {op} {y}") == Fraction(z)
    assert Fraction(steps[-1][3]) == answer
    assert e["solution"].endswith(f"\\boxed{{{e['answer']}}}")
    # The question states the starting quantity and every operand.
    for n in re.findall(r"\d+", e["expression"]):
      assert n in e["question"]


def test_linear_equation_answers_match_sympy(data_dir):
  x = sympy.Symbol("x")
  transforms = standard_transformations + (implicit_multiplication,)
  for e in all_examples(load("linear_equations", data_dir, difficulty=[1, 2, 3, 4])):
    equation = re.fullmatch(r"Solve for x: (.*) = (.*)\.", e["question"])
    lhs, rhs = (parse_expr(side, transformations=transforms) for side in equation.groups())
    (solution,) = sympy.solve(sympy.Eq(lhs, rhs), x)
    assert Fraction(e["answer"]) == Fraction(int(solution.p), int(solution.q)), e
    assert e["solution"].endswith(f"\\boxed{{{e['answer']}}}")


@pytest.mark.parametrize("name", ["arithmetic", "linear_equations"])
def test_demonstrations_pass_the_math_verifier(name, data_dir):
  task = tasks.get_task(name)
  verify = verifiers_base.get(task.verifier)
  for e in all_examples(
    load(name, data_dir, "test", difficulty=list(range(1, SYNTHETIC[name] + 1)))
  ):
    assert verify(e["solution"], task.reference(e)).status == "ok", e
    off_by_one = str(Fraction(e["answer"]) + 1)
    assert verify(e["solution"], off_by_one).status == "wrong", e


def test_countdown_solutions_pass_the_verifier(data_dir):
  task = tasks.get_task("countdown")
  for e in all_examples(load("countdown", data_dir, difficulty=[1, 2, 3, 4])):
    verdict = countdown_verify(e["solution"], task.reference(e), **task.verifier_kwargs(e))
    assert verdict.status == "ok", (e, verdict)
    assert e["target"] not in e["numbers"] and e["answer"] == str(e["target"])
    assert ", ".join(map(str, e["numbers"])) in e["question"]


def test_difficulty_and_size_errors(data_dir):
  with pytest.raises(ValueError, match="1..5"):
    load("arithmetic", data_dir, difficulty=9)
  with pytest.raises(ValueError, match="does not take option"):
    load("arithmetic", data_dir, colour="red")
  with pytest.raises(ValueError, match="distinct questions"):
    load("linear_equations", data_dir, difficulty=1, num_train=5000, num_test=10)


# ------------------------------------------------------------------ public datasets


def test_gsm8k_from_manual_files(tmp_path):
  manual = tmp_path / "manual" / "gsm8k"
  with pytest.raises(FileNotFoundError, match=r"train\.jsonl and test\.jsonl .* in .*manual/gsm8k"):
    tasks.get_task("gsm8k").data_source("train", tmp_path)
  manual.mkdir(parents=True)
  for split, k in (("train", 3), ("test", 2)):
    rows = [
      {"question": f"{split} q{i}?", "answer": f"It is <<{i}*1000={i}000>>{i},000.\n#### {i},000"}
      for i in range(1, k + 1)
    ]
    (manual / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
  train = all_examples(tasks.get_task("gsm8k").data_source("train", tmp_path))
  assert sorted(e["answer"] for e in train) == ["1000", "2000", "3000"]
  e = next(e for e in train if e["answer"] == "2000")
  assert e["question"] == "train q2?"
  assert e["solution"] == "It is 2,000.\n\\boxed{2000}"
  assert len(tasks.get_task("gsm8k").data_source("test", tmp_path)) == 2


def test_math_from_directory_and_jsonl(tmp_path):
  problems = {
    "train/algebra/1.json": ("Find $x$.", "So $\\boxed{\\frac{1}{2}}$, not \\boxed{3}."),
    "train/geometry/7.json": ("Area?", "It is $\\boxed{\\pi r^{2}}$."),
    "test/algebra/2.json": ("Sum?", "We get $\\boxed{10}$."),
  }
  for rel, (problem, solution) in problems.items():
    path = tmp_path / "dirs" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"problem": problem, "solution": solution, "level": "Level 2"}))
  task = tasks.get_task("math", manual_dir=str(tmp_path / "dirs"))
  train = {e["id"]: e for e in all_examples(task.data_source("train", tmp_path / "d1"))}
  assert train["math-train/algebra/1"]["answer"] == "3"  # the LAST box
  assert train["math-train/geometry/7"]["answer"] == "\\pi r^{2}"  # nested braces
  assert train["math-train/geometry/7"]["subject"] == "" and len(train) == 2
  jsonl = tmp_path / "jsonl"
  jsonl.mkdir()
  for split in ("train", "test"):
    row = {"problem": f"{split}?", "solution": "\\boxed{\\sqrt{2}}", "type": "Algebra"}
    (jsonl / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
  (e,) = all_examples(tasks.get_task("math", manual_dir=str(jsonl)).data_source("test", tmp_path))
  assert (e["question"], e["answer"], e["subject"]) == ("test?", "\\sqrt{2}", "Algebra")
  with pytest.raises(FileNotFoundError, match="train/ and test/ directories"):
    tasks.get_task("math").data_source("train", tmp_path / "empty")
  assert last_boxed("no box") is None


# ------------------------------------------------------------------ registry


def test_registry(tmp_path):
  assert {"arithmetic", "countdown", "linear_equations", "gsm8k", "math"} <= set(tasks.task_names())
  with pytest.raises(ValueError, match="Unknown task .*arithmetic"):
    tasks.get_task("chess")
  base = tasks.get_task("arithmetic")
  custom = tasks.register_task(
    tasks.Task(
      name="arith_test_only", builder=base.builder, prompt_template="{question}", verifier="math"
    )
  )
  assert tasks.get_task("arith_test_only") is custom
  with pytest.raises(ValueError, match="already registered"):
    tasks.register_task(
      tasks.Task(name="arith_test_only", builder=base.builder, prompt_template="", verifier="x")
    )

  # A builder factory instead of a class: options reach it as keyword arguments.
  def factory(data_dir, num_train):
    config = arithmetic.Arithmetic.make_config(num_train=num_train, num_test=4, difficulty=1)
    return arithmetic.Arithmetic(config=config, data_dir=data_dir, file_format="array_record")

  made = tasks.Task(
    name="factory_only", builder=factory, prompt_template="{question}", verifier="math"
  )
  assert len(made.with_options(num_train=10).data_source("train", tmp_path)) == 10
  assert tasks.get_task("arithmetic", difficulty=2).options == {"difficulty": 2}
  assert tasks.get_task("arithmetic").options == {}


# ------------------------------------------------------------------ pipeline


@pytest.fixture(scope="module")
def tok(data_dir, tmp_path_factory):
  texts = []
  for name in ("arithmetic", "countdown"):
    task = tasks.get_task(name, size="tiny")
    texts += pipeline.texts_for_tokenizer(task, data_dir, splits=("train", "test"))
  assert len(texts) == 2 * 3 * 80 and "Q: " in texts[0]
  return SentencePieceTokenizer.train(
    texts, vocab_size=400, model_prefix_or_dir=tmp_path_factory.mktemp("tok")
  )


def make_iter(tok, data_dir, **kw):
  args = dict(batch_size=8, tokenizer=tok, max_prompt_len=64, seed=0, data_dir=data_dir)
  return pipeline.PromptIterator(
    tasks.get_task("countdown", size="tiny"), "train", **{**args, **kw}
  )


def take(it, k):
  return [next(it) for _ in range(k)]


def test_prompt_batches_content(tok, data_dir):
  it = make_iter(tok, data_dir)
  batch = next(it)
  assert isinstance(batch, PromptBatch) and batch.tokens_bp.shape == (8, 64)
  assert batch.tokens_bp.dtype == np.int32 and batch.mask_bp[:, -1].all()
  examples = {e["id"]: e for e in all_examples(it.examples)}
  for row, i in enumerate(batch.ids):
    e = examples[i]
    assert batch.prompts[row] == f"Q: {e['question']}\nA: "
    assert batch.references[row] == e["target"] and batch.fields[row] == {"numbers": e["numbers"]}
    n = int(batch.mask_bp[row].sum())
    assert batch.mask_bp[row, 64 - n :].all() and batch.tokens_bp[row, 64 - n] == tok.bos_id
  assert tok.decode_batch(batch.tokens_bp, batch.mask_bp) == batch.prompts
  with pytest.raises(ValueError, match="max_prompt_len=8"):
    next(make_iter(tok, data_dir, max_prompt_len=8))


def test_iterator_determinism_epochs_and_exact_resume(tok, data_dir):
  ids = lambda batches: [b.ids for b in batches]
  run = take(make_iter(tok, data_dir), 20)  # 64 examples / 8 = 8 batches per epoch
  assert ids(run) == ids(take(make_iter(tok, data_dir), 20))
  assert ids(run)[:8] != ids(take(make_iter(tok, data_dir, seed=1), 8))
  epoch0 = sum(ids(run)[:8], [])
  assert len(set(epoch0)) == 64 and sum(ids(run)[8:16], []) != epoch0  # reshuffled
  for k in (0, 3, 8, 13):
    it = make_iter(tok, data_dir)
    take(it, k)
    state = json.loads(json.dumps(it.get_state()))
    resumed = make_iter(tok, data_dir)
    resumed.set_state(state)
    nxt = take(resumed, 4)
    assert ids(nxt) == ids(run)[k : k + 4]
    np.testing.assert_array_equal(nxt[0].tokens_bp, run[k].tokens_bp)


def test_one_pass_without_shuffle_or_repeat(tok, data_dir):
  batches = list(make_iter(tok, data_dir, batch_size=24, shuffle=False, repeat=False))
  assert [len(b.ids) for b in batches] == [24, 24, 16]
  examples = make_iter(tok, data_dir).examples
  assert sum((b.ids for b in batches), []) == [e["id"] for e in all_examples(examples)]


@pytest.mark.parametrize("num_processes", [2, 4])
def test_multi_process_slices_partition_the_global_batch(tok, data_dir, num_processes):
  single = take(make_iter(tok, data_dir), 10)
  per_process = [
    take(make_iter(tok, data_dir, num_processes=num_processes, process_index=i), 10)
    for i in range(num_processes)
  ]
  for step, batch in enumerate(single):
    local = [p[step] for p in per_process]
    assert all(len(b.ids) == 8 // num_processes for b in local)
    assert sum((b.ids for b in local), []) == batch.ids
    np.testing.assert_array_equal(np.concatenate([b.tokens_bp for b in local]), batch.tokens_bp)
  with pytest.raises(ValueError, match="multiple of num_processes"):
    make_iter(tok, data_dir, num_processes=3)


def test_sft_examples_and_errors(data_dir, tok):
  pairs = list(
    pipeline.sft_examples(tasks.get_task("arithmetic", size="tiny"), "test", data_dir=data_dir)
  )
  assert len(pairs) == 16 and all(p.startswith("Q: ") and "\\boxed{" in d for p, d in pairs)
  with pytest.raises(ValueError, match="fewer than batch_size"):
    make_iter(tok, data_dir, batch_size=128)
  it = make_iter(tok, data_dir)
  with pytest.raises(ValueError, match="regenerate"):
    it.set_state({"epoch": 0, "position": 0, "num_examples": 65})


class _Toy(synthetic.SyntheticBuilder):
  """Level 1 has only 5 distinct questions; level 2 has thousands."""

  MAX_LEVEL = 2

  def _extra_features(self):
    return {}

  def _sample(self, rng, level):
    n = int(rng.integers(5 if level == 1 else 10_000))
    return {"question": f"L{level} q{n}", "answer": str(n), "solution": f"\\boxed{{{n}}}"}


def test_exhausted_level_leaves_the_rotation(tmp_path):
  config = _Toy.make_config(num_train=40, num_test=10, difficulty=[1, 2])
  builder = _Toy(config=config, data_dir=tmp_path, file_format="array_record")
  builder.download_and_prepare()
  train = all_examples(tasks.Examples(builder.as_data_source("train")))
  test = all_examples(tasks.Examples(builder.as_data_source("test")))
  levels = [e["difficulty"] for e in train + test]
  assert levels.count(1) == 5 and levels.count(2) == 45
  assert len({e["question"] for e in train + test}) == 50
  with pytest.raises(ValueError, match="only 5 distinct questions"):
    config = _Toy.make_config(num_train=6, num_test=1, difficulty=1)
    bad = _Toy(config=config, data_dir=tmp_path, file_format="array_record")
    bad.download_and_prepare()


def test_prompt_template_with_unknown_field():
  task = tasks.Task(name="t", builder=_Toy, prompt_template="{nope}", verifier="math")
  with pytest.raises(ValueError, match="field 'nope'"):
    task.format_prompt({"question": "q"})
