"""Every JSONL command-line tool against the same hostile inputs: missing, empty and
directory inputs, malformed and wrongly typed lines, invalid UTF-8, outputs over the input
or in a missing directory, an existing output, a full disk, a prompt too large for memory,
and Ctrl-C. Each must end with one `error:` sentence (never a traceback), keep the input,
and never leave a partial output under the output's name."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from flax import nnx

from jaxrl_verify import logprobs, sample, score
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.io import save_model
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.process import label_cli, score_steps
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = [f"{a} plus {b} equals {a + b}." for a in range(20) for b in range(9)]

# name -> (a valid input line, argv before --input/--output given the model directory).
CLIS = {
  "sample": ({"tokens": [1, 2]}, lambda m: ["--checkpoint", m, "--max-new-tokens", "2"]),
  "logprobs": ({"tokens": [1, 2]}, lambda m: ["--checkpoint", m]),
  "score": ({"completion": "\\boxed{1}", "reference": "1"}, lambda m: ["--verifier=math"]),
  "score_steps": ({"prompt": "1 plus 1", "steps": ["2."]}, lambda m: ["--checkpoint", m]),
  "label_cli": (
    {"prompt": "1 plus 1", "steps": ["2."], "reference": "2"},
    lambda m: ["--checkpoint", m, "--num-rollouts", "1"],
  ),
}
MAINS = {
  "sample": sample.main,
  "logprobs": logprobs.main,
  "score": score.main,
  "score_steps": score_steps.main,
  "label_cli": label_cli.main,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("boundaries")
  tok = SentencePieceTokenizer.train(CORPUS, 300, str(root))
  cfg = get_preset("tiny").replace(vocab_size=tok.vocab_size)
  save_model(root / "model", cfg, nnx.state(Transformer(cfg, rngs=nnx.Rngs(0))), tokenizer=tok)
  return str(root / "model")


def _call(name, model_dir, inp, out, capsys):
  """(exit status, stderr) of one CLI run in this process; argparse's errors count too."""
  argv = [*CLIS[name][1](model_dir), "--input", str(inp), "--output", str(out)]
  try:
    status = MAINS[name](argv)
  except SystemExit as e:  # parser.error: status 2 and its message on stderr.
    status = e.code
  return status, capsys.readouterr().err


def _assert_one_sentence(status, err, says):
  assert status == 2, err
  last = err.strip().splitlines()[-1]
  assert "error:" in last and says in last, err
  assert "Traceback" not in err


def _lines(*records) -> bytes:
  return b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n" for r in records)


@pytest.mark.parametrize("name", CLIS)
def test_file_boundaries(name, model_dir, tmp_path, capsys):
  good = tmp_path / "in.jsonl"
  good.write_bytes(_lines(CLIS[name][0]))
  before = good.read_bytes()
  out = tmp_path / "out.jsonl"
  cases = [
    (tmp_path / "missing.jsonl", out, "does not exist"),
    (tmp_path, out, "is a directory"),
    (good, good, "is the input file"),
    (good, tmp_path, "is a directory"),
    (good, tmp_path / "no" / "out.jsonl", "does not exist; create it first"),
  ]
  empty = tmp_path / "empty.jsonl"
  empty.write_bytes(b"")
  cases.append((empty, out, "holds no"))
  for inp, dst, says in cases:
    _assert_one_sentence(*_call(name, model_dir, inp, dst, capsys), says)
  assert good.read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl", "in.jsonl"]


@pytest.mark.parametrize("name", [n for n in CLIS if n != "score"])
@pytest.mark.parametrize(
  ("line", "says"),
  [
    (b'{"tokens": [1,\n', "line 2 is not valid JSON"),
    (b"[1, 2]\n", "line 2 must be a JSON object"),
    (b'{"text": "caf\xe9"}\n', "line 2 is not valid UTF-8"),
    ({"tokens": "1 2", "prompt": 5, "steps": "2.", "reference": "2"}, "line 2 needs"),
  ],
)
def test_a_bad_line_is_named_and_an_existing_output_is_kept(
  name, line, says, model_dir, tmp_path, capsys
):
  inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  inp.write_bytes(_lines(CLIS[name][0], line))
  out.write_text("the previous output\n")
  _assert_one_sentence(*_call(name, model_dir, inp, out, capsys), says)
  assert out.read_text() == "the previous output\n"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_score_turns_bad_lines_into_verdicts_and_replaces_an_existing_output(
  model_dir, tmp_path, capsys
):
  # `score` keeps one output line per input line: a bad line is an invalid verdict.
  inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  inp.write_bytes(
    _lines(
      CLIS["score"][0], b'{"completion": "\\\\boxed{1}",\n', b"[1]\n", b'{"completion": "\xe9"}\n'
    )
  )
  out.write_text("the previous output\n")
  assert _call("score", model_dir, inp, out, capsys)[0] == 0
  rows = [json.loads(x) for x in out.read_text().splitlines()]
  assert [r["status"] for r in rows] == ["ok", "invalid", "invalid", "invalid"]
  assert [r["reason"].split(":")[0].split(" is")[0][-6:] for r in rows[1:]] == [
    "line 2",
    "line 3",
    "line 4",
  ]


@pytest.mark.parametrize("name", ["sample", "logprobs"])
def test_a_prompt_too_large_for_memory_is_one_sentence(name, model_dir, tmp_path, capsys):
  inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  inp.write_bytes(_lines({"tokens": [5] * 300_000}))
  _assert_one_sentence(*_call(name, model_dir, inp, out, capsys), "ran out of memory")
  assert not out.exists()


# A full disk is the file-size limit (a write past it fails with EFBIG, as one on a full
# filesystem fails with ENOSPC), set in a child so the test runner keeps its limits.
FULL_DISK_CHILD = textwrap.dedent(
  """
  import importlib, resource, signal, sys
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  main = importlib.import_module(sys.argv[1]).main
  resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
  sys.exit(main(sys.argv[2:]))
  """
)


@pytest.mark.parametrize(
  ("module", "name"), [("jaxrl_verify.score", "score"), ("jaxrl_verify.logprobs", "logprobs")]
)
def test_a_full_disk_keeps_the_previous_output(module, name, model_dir, tmp_path):
  inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  inp.write_bytes(_lines(*[CLIS[name][0]] * 8))
  out.write_text("old\n")
  argv = [*CLIS[name][1](model_dir), "--input", str(inp), "--output", str(out)]
  proc = subprocess.run(
    [sys.executable, "-c", FULL_DISK_CHILD, module, *argv],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )
  _assert_one_sentence(proc.returncode, proc.stderr, f"Cannot write {out}")
  assert out.read_text() == "old\n"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_ctrl_c_leaves_no_output_and_says_so(tmp_path):
  # A program that sleeps keeps the code verifier busy long enough to be interrupted.
  inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  slow = {"completion": "```python\nimport time\ntime.sleep(60)\n```", "tests": ["assert 1"]}
  inp.write_bytes(_lines(slow, slow))
  proc = subprocess.Popen(
    [sys.executable, "-m", "jaxrl_verify.score", "--verifier=code", "--input", str(inp)]
    + ["--output", str(out), "--timeout", "120"],
    cwd=ROOT,
    stderr=subprocess.PIPE,
    text=True,
    preexec_fn=_default_sigint,
  )
  time.sleep(4)  # The pool has started and the programs are running.
  proc.send_signal(signal.SIGINT)
  err = proc.communicate(timeout=60)[1]
  assert proc.returncode == 130, err
  assert err.strip().splitlines()[-1].startswith("score: error: interrupted"), err
  assert "Traceback" not in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def _default_sigint():
  # A child of a non-interactive shell may inherit SIGINT ignored (then Python installs no
  # KeyboardInterrupt handler); Ctrl-C from a terminal arrives with the default disposition.
  signal.signal(signal.SIGINT, signal.SIG_DFL)
