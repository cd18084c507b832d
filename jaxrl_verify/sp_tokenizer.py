"""A sentencepiece tokenizer trained offline on the task corpus.

Special ids are fixed so that a model config can rely on them: pad 0, eos 1, bos 2,
unk 3. Byte fallback is on (any text round-trips, unseen characters become byte
pieces) and digits are split one per piece, because arithmetic is learned digit by
digit. Normalisation is the identity and no dummy prefix is added, so
`decode(encode(text)) == text` exactly.

Typical use:

  tok = SentencePieceTokenizer.train(texts, vocab_size=512, model_prefix_or_dir=workdir)
  tokens_bp, mask_bp = tok.encode_batch(prompts, max_len=64)
  tok2 = SentencePieceTokenizer.from_serialized(tok.serialized_proto())  # e.g. from a checkpoint

It implements the `jaxrl_verify.tokenizer.Tokenizer` protocol, as
`jaxrl_verify.hf_tokenizer.HFTokenizer` does; `tokenizer.load_any(path)` loads either kind
by what the path holds.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import sentencepiece as spm

from jaxrl_verify.token_rows import pack_rows

PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3
MODEL_FILENAME = "tokenizer.model"


class SentencePieceTokenizer:
  """A sentencepiece model with batch helpers for left-padded prompts.

  Attributes:
    path: the model file this tokenizer was loaded from or saved to, or None.
  """

  def __init__(self, processor: spm.SentencePieceProcessor, path: str | None = None):
    self._sp = processor
    self.path = path
    if self._sp.pad_id() < 0 or self._sp.pad_id() == self._sp.eos_id():
      raise ValueError(
        "The sentencepiece model has no pad id distinct from eos; train it with "
        "SentencePieceTokenizer.train so that pad and eos differ."
      )

  # ---------------------------------------------------------------- creation

  @classmethod
  def train(
    cls,
    texts: Iterable[str],
    vocab_size: int,
    model_prefix_or_dir: str | os.PathLike,
    *,
    model_type: Literal["bpe", "unigram"] = "bpe",
    user_defined_symbols: Sequence[str] = (),
    max_sentence_chars: int = 16384,
    num_threads: int = 2,
  ) -> SentencePieceTokenizer:
    """Trains a model from an iterator of texts and writes it to disk.

    Args:
      texts: the corpus, one document (may contain newlines) per item.
      vocab_size: the target vocabulary size, including 256 byte pieces and 4
        specials; a small corpus may yield fewer pieces (the limit is soft).
      model_prefix_or_dir: an existing directory (the model is written to
        `DIR/tokenizer.model`) or a file prefix (`PREFIX.model`).
      model_type: `bpe` or `unigram`.
      user_defined_symbols: strings always kept as single pieces (e.g. `\\boxed`).
      max_sentence_chars: longer documents are cut to this many characters.
      num_threads: trainer threads.

    Returns:
      The trained tokenizer, with `path` set to the written model file.
    """
    if model_type not in ("bpe", "unigram"):
      raise ValueError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}.")
    if vocab_size < 300:
      raise ValueError(
        f"vocab_size={vocab_size} is too small: 256 byte pieces and 4 specials are always "
        "in the vocabulary; use at least 300."
      )
    path = _model_path(model_prefix_or_dir)
    corpus = [t[:max_sentence_chars] for t in texts if t]
    if not corpus:
      raise ValueError("SentencePieceTokenizer.train got no non-empty texts; pass the task corpus.")
    buf = io.BytesIO()
    trainer_args = dict(
      sentence_iterator=iter(corpus),
      model_writer=buf,
      vocab_size=vocab_size,
      model_type=model_type,
      byte_fallback=True,
      split_digits=True,
      pad_id=PAD_ID,
      eos_id=EOS_ID,
      bos_id=BOS_ID,
      unk_id=UNK_ID,
      # Identity normalisation and no dummy prefix make decode(encode(x)) == x.
      normalization_rule_name="identity",
      add_dummy_prefix=False,
      remove_extra_whitespaces=False,
      allow_whitespace_only_pieces=True,
      user_defined_symbols=list(user_defined_symbols),
      # A small corpus may not support `vocab_size` pieces; take what it supports.
      hard_vocab_limit=False,
      max_sentence_length=4 * max_sentence_chars,
      character_coverage=1.0,
      num_threads=num_threads,
      minloglevel=2,
    )
    try:
      spm.SentencePieceTrainer.train(**trainer_args)
    except RuntimeError as e:
      if "required_chars" not in str(e):
        raise
      raise ValueError(
        f"vocab_size={vocab_size} is too small for this corpus, whose distinct characters "
        f"each need a piece ({str(e).rsplit('required_chars.', 1)[-1].split('.')[0].strip()}); "
        "raise vocab_size."
      ) from None
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
      f.write(buf.getvalue())
    return cls.from_serialized(buf.getvalue(), path=path)

  @classmethod
  def load(cls, path: str | os.PathLike) -> SentencePieceTokenizer:
    """Loads a model file, or `DIR/tokenizer.model` when `path` is a directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
      path = os.path.join(path, MODEL_FILENAME)
    if not os.path.isfile(path):
      raise FileNotFoundError(
        f"No tokenizer model at {path}; train one with SentencePieceTokenizer.train or pass "
        "the path of an existing .model file."
      )
    with open(path, "rb") as f:
      return cls.from_serialized(f.read(), path=path)

  @classmethod
  def from_serialized(cls, proto: bytes, path: str | None = None) -> SentencePieceTokenizer:
    """Rebuilds a tokenizer from `serialized_proto()` bytes (e.g. from a checkpoint)."""
    sp = spm.SentencePieceProcessor()
    try:
      sp.LoadFromSerializedProto(bytes(proto))
    except (RuntimeError, OSError, TypeError) as e:
      where = f"in {path}" if path else "in the given bytes"
      raise ValueError(
        f"The tokenizer model {where} is not a valid sentencepiece model ({e}); "
        "retrain it with SentencePieceTokenizer.train."
      ) from None
    return cls(sp, path=path)

  def serialized_proto(self) -> bytes:
    """The model as bytes, so a checkpoint can carry the tokenizer."""
    return self._sp.serialized_model_proto()

  def files(self) -> dict[str, bytes]:
    """File name -> contents for a model directory (`models.io.save_model`)."""
    return {MODEL_FILENAME: self.serialized_proto()}

  def __getstate__(self):
    return {"proto": self.serialized_proto(), "path": self.path}

  def __setstate__(self, state):
    self.__init__(SentencePieceTokenizer.from_serialized(state["proto"])._sp, path=state["path"])

  # ---------------------------------------------------------------- ids

  @property
  def vocab_size(self) -> int:
    return self._sp.vocab_size()

  @property
  def pad_id(self) -> int:
    return self._sp.pad_id()

  @property
  def eos_id(self) -> int:
    return self._sp.eos_id()

  @property
  def bos_id(self) -> int:
    return self._sp.bos_id()

  @property
  def unk_id(self) -> int:
    return self._sp.unk_id()

  def id_to_piece(self, token_id: int) -> str:
    return self._sp.id_to_piece(int(token_id))

  # ---------------------------------------------------------------- encode/decode

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of `text`, optionally framed by bos/eos."""
    ids = self._sp.encode(text)
    return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids`, stopping at the first eos and ignoring pad and bos."""
    out = []
    for i in np.asarray(ids, np.int64).reshape(-1).tolist():
      if i == self.eos_id:
        break
      if i not in (self.pad_id, self.bos_id):
        out.append(i)
    return self._sp.decode(out)

  def encode_batch(
    self,
    texts: Sequence[str],
    max_len: int,
    left_pad: bool = True,
    *,
    add_bos: bool = False,
    add_eos: bool = False,
    truncate: Literal["left", "right"] | None = None,
  ) -> tuple[np.ndarray, np.ndarray]:
    """`Tokenizer.encode_batch`: one encoding call for the batch, then `token_rows.pack_rows`."""
    bos, eos = [self.bos_id] * add_bos, [self.eos_id] * add_eos
    # One call encodes the whole batch (sentencepiece batches it in C++).
    bodies = self._sp.encode(list(texts))
    return pack_rows(
      texts, [bos + b + eos for b in bodies], max_len, self.pad_id, left_pad, truncate
    )

  def decode_batch(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> list[str]:
    """Decodes each row of a [b, t] array (where `mask` is True, if given)."""
    tokens = np.asarray(tokens)
    if mask is not None:
      mask = np.asarray(mask, bool)
      return [self.decode(row[m]) for row, m in zip(tokens, mask)]
    return [self.decode(row) for row in tokens]


def _model_path(model_prefix_or_dir: str | os.PathLike) -> str:
  p = os.fspath(model_prefix_or_dir)
  if os.path.isdir(p) or p.endswith(os.sep):
    return os.path.join(p, MODEL_FILENAME)
  return p if p.endswith(".model") else p + ".model"
