"""The sentencepiece tokenizer: training, exact round trips, padding, persistence, errors."""

import pickle

import numpy as np
import pytest

from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer

CORPUS = [
  f"Q: Ana has {i} liters of water. Ana gets {i % 13} more. How many?\nA: "
  f"{i} + {i % 13} = {i + i % 13}. \\boxed{{{i + i % 13}}}"
  for i in range(1500)
] + ["Solve for x: 3x - 5 = 10.", "\\frac{1}{2} + \\sqrt{2}"]

TRICKY = [
  "12345 + 67890 = 80235",
  "\\boxed{\\frac{3}{4}} and \\left(1, 2\\right)",
  "  leading and trailing spaces  ",
  "line one\nline two\n\ttab",
  "unicode: é ∑ 🙂 ÷",
  "",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  return SentencePieceTokenizer.train(
    CORPUS, vocab_size=400, model_prefix_or_dir=tmp_path_factory.mktemp("t")
  )


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_is_exact(tok, text):
  assert tok.decode(tok.encode(text)) == text


def test_digits_are_single_pieces(tok):
  ids = tok.encode("9876543210")
  assert [tok.id_to_piece(i) for i in ids] == list("9876543210")
  pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
  learned = [p for p in pieces if not (p.startswith("<0x") and p.endswith(">"))]  # not bytes
  assert len(learned) > 40
  assert all(sum(c.isdigit() for c in p) <= 1 for p in learned), learned


def test_special_ids(tok):
  assert len({tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id}) == 4
  assert 300 <= tok.vocab_size <= 400
  ids = tok.encode("1 + 2", add_bos=True, add_eos=True)
  assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
  assert ids[1:-1] == tok.encode("1 + 2")


def test_decode_stops_at_eos_and_ignores_pad(tok):
  ids = [tok.pad_id, tok.pad_id, tok.bos_id, *tok.encode("7 * 6"), tok.eos_id, *tok.encode("junk")]
  assert tok.decode(ids) == "7 * 6"
  assert tok.decode(np.asarray(ids, np.int32)) == "7 * 6"


def test_encode_batch_left_and_right_padding(tok):
  texts = ["1 + 1", "Ana has 12 liters of water."]
  lens = [len(tok.encode(t)) + 1 for t in texts]  # + bos
  tokens_bp, mask_bp = tok.encode_batch(texts, max_len=24, add_bos=True)
  assert tokens_bp.dtype == np.int32 and mask_bp.dtype == bool and tokens_bp.shape == (2, 24)
  for row, n in enumerate(lens):
    assert mask_bp[row].sum() == n and mask_bp[row, 24 - n :].all()  # left-padded
    assert (tokens_bp[row, : 24 - n] == tok.pad_id).all()
    assert tokens_bp[row, 24 - n] == tok.bos_id
  assert tok.decode_batch(tokens_bp, mask_bp) == texts
  right_bp, right_mask_bp = tok.encode_batch(texts, max_len=24, left_pad=False)
  assert right_mask_bp[:, 0].all() and tok.decode_batch(right_bp) == texts


def test_encode_batch_too_long(tok):
  text = "Ana has 12345 liters"
  n = len(tok.encode(text))
  with pytest.raises(ValueError, match="max_len=4"):
    tok.encode_batch([text], max_len=4)
  left_bp, _ = tok.encode_batch([text], max_len=4, truncate="left")
  right_bp, _ = tok.encode_batch([text], max_len=4, truncate="right")
  assert left_bp[0].tolist() == tok.encode(text)[n - 4 :]
  assert right_bp[0].tolist() == tok.encode(text)[:4]


def test_persistence_file_dir_bytes_pickle(tok, tmp_path):
  text = TRICKY[1]
  for other in (
    SentencePieceTokenizer.load(tok.path),
    SentencePieceTokenizer.load(tok.path.rsplit("/", 1)[0]),  # the directory
    SentencePieceTokenizer.from_serialized(tok.serialized_proto()),
    pickle.loads(pickle.dumps(tok)),
  ):
    assert other.encode(text) == tok.encode(text) and other.vocab_size == tok.vocab_size
  prefixed = SentencePieceTokenizer.train(
    CORPUS[:300], 320, tmp_path / "sub" / "spm", model_type="unigram"
  )
  assert prefixed.path.endswith("sub/spm.model")
  assert prefixed.decode(prefixed.encode(text)) == text


def test_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="SentencePieceTokenizer.train"):
    SentencePieceTokenizer.load(tmp_path / "missing.model")
  corrupt = tmp_path / "corrupt.model"
  corrupt.write_bytes(b"not a model at all")
  with pytest.raises(ValueError, match="not a valid sentencepiece model"):
    SentencePieceTokenizer.load(corrupt)
  with pytest.raises(ValueError, match="too small"):
    SentencePieceTokenizer.train(CORPUS, vocab_size=100, model_prefix_or_dir=tmp_path)
  cyrillic = "".join(chr(0x400 + i) for i in range(200))
  with pytest.raises(ValueError, match="distinct characters"):
    SentencePieceTokenizer.train([cyrillic], vocab_size=300, model_prefix_or_dir=tmp_path)
  with pytest.raises(ValueError, match="model_type"):
    SentencePieceTokenizer.train(
      CORPUS, vocab_size=400, model_prefix_or_dir=tmp_path, model_type="wordpiece"
    )
