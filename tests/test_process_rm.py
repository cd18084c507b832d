"""Reward models over steps: packing, the BCE loss (against numpy), training, solution scores."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from jaxrl_verify.data import chains, pipeline, tasks
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer, ValueModel
from jaxrl_verify.process import rm, steps
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer

FMT = steps.step_format("lines")


def _bce_numpy(z, y):
  p = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
  return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_bce_loss_matches_numpy_and_is_stable():
  rng = np.random.default_rng(0)
  z = rng.normal(scale=3.0, size=(4, 6)).astype(np.float32)
  y = rng.random((4, 6)).astype(np.float32)  # Soft labels.
  m = rng.random((4, 6)) > 0.3
  loss, metrics = rm.bce_loss(z, y, m)
  np.testing.assert_allclose(loss, (_bce_numpy(z, y) * m).sum() / m.sum(), rtol=1e-5)
  np.testing.assert_allclose(
    metrics["step_accuracy"], (((z > 0) == (y > 0.5)) * m).sum() / m.sum(), rtol=1e-6
  )
  big, _ = rm.bce_loss(np.array([[80.0, -80.0]]), np.array([[0.0, 1.0]]), np.ones((1, 2), bool))
  np.testing.assert_allclose(big, 80.0, rtol=1e-6)  # No overflow: log(1 + e^80) = 80.


def test_solution_scores_by_hand():
  probs = [0.9, 0.5, 0.8]
  assert rm.solution_score(probs, "min") == 0.5
  assert rm.solution_score(probs, "product") == pytest.approx(0.36)
  assert rm.solution_score(probs, "last") == 0.8
  with pytest.raises(ValueError, match="Unknown solution score 'mean'"):
    rm.solution_score(probs, "mean")


@pytest.fixture(scope="module")
def chain_data(tmp_path_factory):
  root = tmp_path_factory.mktemp("rm")
  task = tasks.get_task("chains", size="tiny", difficulty=(1,))
  tok = SentencePieceTokenizer.train(pipeline.texts_for_tokenizer(task, root), 320, root)
  return task, root, tok


def test_pack_places_step_ends_and_refuses_bad_input(chain_data):
  _, _, tok = chain_data
  sol = ["7 + 5 = 12.", "12 - 3 = 9.", "\\boxed{9}"]
  batch = rm.pack(tok, ["Q: a"], [sol], [[1, 1, 0]], FMT, max_len=64, max_steps=4)
  head = len(tok.encode("Q: a", add_bos=True))
  ids, ends = steps.step_end_positions(tok, sol, FMT, trailing_separator=True)
  assert batch.tokens_bt[0, : head + len(ids)].tolist() == tok.encode("Q: a", add_bos=True) + ids
  assert batch.step_pos_bs[0, :3].tolist() == [head + e for e in ends]
  assert batch.step_mask_bs[0].tolist() == [True, True, True, False]
  assert batch.label_bs[0].tolist() == [1, 1, 0, 0]
  orm = rm.pack(tok, ["Q: a"], [sol], [[1, 1, 0]], FMT, max_len=64, max_steps=4, outcome_only=True)
  assert orm.step_mask_bs[0].tolist() == [False, False, True, False]
  with pytest.raises(ValueError, match="has 3 steps but 2 labels"):
    rm.pack(tok, ["Q"], [sol], [[1, 0]], FMT, max_len=64, max_steps=4)
  with pytest.raises(ValueError, match="has no steps"):
    rm.pack(tok, ["Q"], [[]], None, FMT, max_len=64, max_steps=4)
  with pytest.raises(ValueError, match="more than max_len=8"):
    rm.pack(tok, ["Q"], [sol], None, FMT, max_len=8, max_steps=4)


def _tiny(tok):
  return get_preset(
    "tiny", vocab_size=384, num_valid_tokens=tok.vocab_size, embed_dim=64, head_dim=16, mlp_dim=128
  )


def _token_head(tok, cfg, seed=0):
  good, bad = (rm.label_token_id(tok, t, "rm.good_token") for t in ("+", "-"))
  return rm.TokenHeadRM(cfg, good_id=good, bad_id=bad, rngs=nnx.Rngs(seed))


def test_token_head_reads_the_lm_logits_of_its_two_tokens(chain_data):
  """The token head's step logit is l[+] - l[-] of the plain language model's forward at
  each step end (the same parameters, loaded into a `Transformer`), so sigmoid of it is
  the LM's softmax over {+, -}."""
  _, _, tok = chain_data
  cfg = _tiny(tok)
  head = _token_head(tok, cfg, seed=3)
  lm = nnx.merge(nnx.graphdef(Transformer(cfg, rngs=nnx.Rngs(0))), nnx.state(head))
  sols = [["7 + 5 = 12.", "12 - 3 = 9.", "\\boxed{9}"], ["2 * 3 = 6.", "\\boxed{6}"]]
  batch = rm.pack(tok, ["Q: a", "Q: bb"], sols, None, FMT, max_len=48, max_steps=4)
  got = np.asarray(rm.step_logits(head, batch))
  logits_btv, _ = lm(batch.tokens_bt, valid_bt=batch.valid_bt)
  logits_btv = np.asarray(logits_btv, np.float64)
  good, bad = tok.encode("+")[0], tok.encode("-")[0]
  for i, sol in enumerate(sols):
    for k in range(len(sol)):
      at = batch.step_pos_bs[i, k]
      want = logits_btv[i, at, good] - logits_btv[i, at, bad]
      np.testing.assert_allclose(got[i, k], want, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="config.rm.good_token 'good' is 4 tokens"):
    rm.label_token_id(tok, "good", "rm.good_token")


@pytest.mark.parametrize("head", rm.HEADS)
def test_a_prm_fits_step_labels(chain_data, head):
  """The training step moves the scores read at the step ends: a small PRM (either head)
  fits the step labels of 16 solutions (half with planted errors) it trains on. Labels
  here are the ground truth: this tests the machinery; how well a PRM generalises is
  measured by the process-supervision pipeline."""
  task, root, tok = chain_data
  train = task.data_source("train", root)
  rng = np.random.default_rng(0)
  prompts, sols, labels = [], [], []
  for i in range(8):
    ex = train[i]
    start, ops = int(ex["start"]), chains.parse_ops(ex["ops"])
    for kind in (None, "wrong_result"):
      sol = (
        chains.solution_steps(start, ops)
        if kind is None
        else chains.corrupt(start, ops, rng, kind=kind, at=int(rng.integers(len(ops))))
      )
      prompts.append(task.format_prompt(ex))
      sols.append(sol)
      labels.append([float(x) for x in chains.step_labels(start, ops, sol)])
  batch = rm.pack(tok, prompts, sols, labels, FMT, max_len=128, max_steps=4)
  cfg = _tiny(tok)
  model = ValueModel(cfg, rngs=nnx.Rngs(0)) if head == "scalar" else _token_head(tok, cfg)
  graphdef, params = nnx.split(model)
  tx = optax.adam(3e-3)
  opt_state = tx.init(params)
  step = jax.jit(rm.make_train_step(graphdef, tx))
  first = None
  for _ in range(80):
    params, opt_state, m = step(params, opt_state, batch)
    first = float(m["loss"]) if first is None else first
  probs = np.asarray(jax.jit(rm.make_score_fn(graphdef))(params, batch))
  mask = np.asarray(batch.step_mask_bs)
  acc = ((probs > 0.5) == (np.asarray(batch.label_bs) > 0.5))[mask].mean()
  assert float(m["loss"]) < 0.2 * first and acc >= 0.95, (first, float(m["loss"]), acc)
