"""The `sample` and `logprobs` CLIs end to end on a tiny saved checkpoint."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from jaxrl_verify import logprobs as logprobs_cli
from jaxrl_verify import sample as sample_cli
from jaxrl_verify.models import scoring
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.io import save_model
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = [
  f"{a} plus {b} equals {a + b}. The answer is {a + b}." for a in range(30) for b in range(9)
]


def _run(module, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  return subprocess.run(
    [sys.executable, "-m", module, *map(str, args)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def _write(path, lines):
  path.write_text("".join(json.dumps(x) + "\n" for x in lines))
  return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli")
  tok = SentencePieceTokenizer.train(CORPUS, 300, str(root))
  cfg = get_preset("tiny").replace(vocab_size=tok.vocab_size)
  model = Transformer(cfg, rngs=nnx.Rngs(0))
  save_model(root / "model", cfg, nnx.state(model), tokenizer=tok)
  save_model(root / "bare", cfg, nnx.state(model))
  graphdef, state = nnx.split(model)
  tf = jax.jit(lambda s, t: scoring.teacher_forced_logprobs(nnx.merge(graphdef, s), t))
  return dict(root=root, cfg=cfg, tok=tok, teacher_forced=lambda t: np.asarray(tf(state, t)))


def test_logprobs_cli_matches_in_process_teacher_forcing(checkpoint):
  root, vocab = checkpoint["root"], checkpoint["cfg"].vocab_size
  rng = np.random.default_rng(0)
  lines = [{"tokens": rng.integers(0, vocab, n).tolist(), "id": n} for n in (7, 1, 19, 3, 12)]
  out = root / "logprobs.jsonl"
  proc = _run(
    "jaxrl_verify.logprobs",
    "--checkpoint",
    root / "model",
    "--input",
    _write(root / "in.jsonl", lines),
    "--output",
    out,
    "--batch-size",
    2,
  )
  assert proc.returncode == 0, proc.stderr
  results = [json.loads(x) for x in out.read_text().splitlines()]
  assert [r["id"] for r in results] == [x["id"] for x in lines]  # order and fields kept
  for line, result in zip(lines, results):
    want = checkpoint["teacher_forced"](np.array([line["tokens"]]))[0]
    assert len(result["logprobs"]) == len(line["tokens"]) - 1
    np.testing.assert_allclose(result["logprobs"], want, atol=1e-5)


def test_sample_cli_text_and_tokens(checkpoint):
  root, tok = checkpoint["root"], checkpoint["tok"]
  lines = [
    {"text": "3 plus 4 equals"},
    {"tokens": tok.encode("12 plus 5 equals 17. The")},
    {"text": "7"},
  ]
  out = root / "samples.jsonl"
  proc = _run(
    "jaxrl_verify.sample",
    "--checkpoint",
    root / "model",
    "--input",
    _write(root / "prompts.jsonl", lines),
    "--output",
    out,
    "--temperature",
    0.9,
    "--top-k",
    50,
    "--max-new-tokens",
    6,
    "--batch-size",
    2,
    "--seed",
    3,
  )
  assert proc.returncode == 0, proc.stderr
  results = [json.loads(x) for x in out.read_text().splitlines()]
  assert len(results) == 3
  for line, r in zip(lines, results):
    n = len(r["completion_tokens"])
    assert 1 <= n <= 6 and len(r["logprobs"]) == n
    assert r["finish_reason"] == ("eos" if r["completion_tokens"][-1] == tok.eos_id else "length")
    assert r["finish_reason"] == "eos" or n == 6
    assert r["completion"] == tok.decode(r["completion_tokens"])
    # The reported logprobs are the policy's teacher-forced logprobs of the completion.
    prompt = line["tokens"] if "tokens" in line else tok.encode(line["text"])
    seq = np.array([prompt + r["completion_tokens"]])
    np.testing.assert_allclose(r["logprobs"], checkpoint["teacher_forced"](seq)[0, -n:], atol=1e-5)


def test_cli_errors_are_one_sentence(checkpoint, capsys):
  root = checkpoint["root"]
  prompts = _write(root / "text.jsonl", [{"text": "1 plus 1"}])
  out = str(root / "x.jsonl")
  assert (
    sample_cli.main(["--checkpoint", str(root / "bare"), "--input", str(prompts), "--output", out])
    == 2
  )
  assert "has no tokenizer.model" in capsys.readouterr().err
  (root / "empty_dir").mkdir()
  assert (
    logprobs_cli.main(
      ["--checkpoint", str(root / "empty_dir"), "--input", str(prompts), "--output", out]
    )
    == 2
  )
  err = capsys.readouterr().err
  assert "not a saved model" in err and "Traceback" not in err
  bad = _write(root / "bad.jsonl", [{"tokens": [1, 2]}, {"tokens": [1, 99999]}])
  assert (
    logprobs_cli.main(["--checkpoint", str(root / "model"), "--input", str(bad), "--output", out])
    == 2
  )
  assert "line 2 has token ids [99999] outside the model vocabulary" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    sample_cli.parse_args(["--checkpoint", "d", "--input", "i", "--output", "o", "--top-p", "0"])
  assert "top_p must be in (0, 1]" in capsys.readouterr().err


def test_output_over_the_input_and_invalid_utf8_are_refused_with_the_input_kept(checkpoint, capsys):
  root = checkpoint["root"]
  prompts = _write(root / "keep.jsonl", [{"tokens": [1, 2, 3]}])
  before = prompts.read_bytes()
  for cli in (sample_cli, logprobs_cli):
    argv = ["--checkpoint", str(root / "model"), "--input", str(prompts), "--output"]
    assert cli.main([*argv, str(prompts)]) == 2
    assert "is the input file" in capsys.readouterr().err
  assert prompts.read_bytes() == before
  binary = root / "latin1.jsonl"
  binary.write_bytes(b'{"tokens": [1, 2]}\n{"text": "caf\xe9"}\n')
  out = root / "never.jsonl"
  argv = ["--checkpoint", str(root / "model"), "--input", str(binary), "--output", str(out)]
  assert logprobs_cli.main(argv) == 2
  assert "line 2 is not valid UTF-8" in capsys.readouterr().err
  assert not out.exists()
