"""A Hugging Face `tokenizer.json` (e.g. Qwen2.5's or Llama-3's byte-level BPE) behind the
`jaxrl_verify.tokenizer.Tokenizer` protocol.

The `tokenizers` library does the encoding; this class adds the special ids and the
left-padded batch helpers that the data pipeline, the sampler and the trainer use.

Special tokens come from `tokenizer_config.json` and `special_tokens_map.json` next to
`tokenizer.json` (the latter wins, as in `transformers`); a value may be a string or an
`AddedToken` dict with a `content` field. When a token is not named there:

* eos: the first of `EOS_FALLBACKS` in the vocabulary (logged; an instruct model's
  config names its turn end, e.g. `<|im_end|>`, so pass the directory, not the file);
* pad: the first of `PAD_FALLBACKS` in the vocabulary (Llama-3.1 reserves
  `<|finetune_right_pad_id|>`), else eos. Pad may therefore equal eos (Qwen2.5 names
  `<|endoftext|>` for both). That is safe: prompts carry a mask, the sampler marks
  finished rows by length, and `decode` skips LEADING pads before it stops at eos;
* bos: None when the model has none (Qwen2.5); `add_bos` is then a no-op.

Text is encoded without the tokenizer's own post-processor (bos/eos are added only on
request) and decoded without dropping special tokens, so a chat template written into a
prompt encodes to its special ids and `decode(encode(text)) == text` for normalised text.

  tok = HFTokenizer.load("/path/to/Qwen2.5-1.5B")  # or .../tokenizer.json
  tokens_bp, mask_bp = tok.encode_batch(prompts, max_len=512, add_bos=True)
  tok2 = HFTokenizer.from_files(tok.files())  # e.g. from a model directory
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import tokenizers
from absl import logging
from etils import epath

from jaxrl_verify.token_rows import pack_rows

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
EOS_FALLBACKS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")
PAD_FALLBACKS = ("<|finetune_right_pad_id|>", "<pad>", "[PAD]", "<|reserved_special_token_0|>")
_ROLES = ("eos_token", "bos_token", "pad_token")


class HFTokenizer:
  """A `tokenizers.Tokenizer` with special ids and batch helpers for left-padded prompts.

  Attributes:
    path: the `tokenizer.json` this tokenizer was loaded from, or None.
    special_tokens: role (`eos_token`, `bos_token`, `pad_token`) -> token text or None,
      as resolved (fallbacks applied).
  """

  def __init__(
    self,
    tokenizer: tokenizers.Tokenizer,
    config: Mapping[str, Any] | None = None,
    path: str | None = None,
  ):
    """Wraps `tokenizer`; `config` is the (merged) tokenizer_config.json contents."""
    self._tok = tokenizer
    # A tokenizer.json may enable padding/truncation; our batch helpers do both themselves.
    self._tok.no_padding()
    self._tok.no_truncation()
    self.path = path
    self._config = dict(config or {})
    vocab = self._tok.get_vocab(with_added_tokens=True)
    # Ids need not be dense; every id must be below vocab_size (it bounds the model's logits).
    self._vocab_size = max(vocab.values()) + 1 if vocab else 0
    where = path or "the given tokenizer"
    eos = _token_text(self._config.get("eos_token"))
    if eos is None:
      eos = next((t for t in EOS_FALLBACKS if t in vocab), None)
      if eos is None:
        raise ValueError(
          f"{where} names no eos token and has none of {list(EOS_FALLBACKS)}; add "
          f'"eos_token" to {CONFIG_FILE} next to {TOKENIZER_FILE}.'
        )
      logging.warning("%s names no eos token; using %r.", where, eos)
    pad = _token_text(self._config.get("pad_token"))
    if pad is None:
      pad = next((t for t in PAD_FALLBACKS if t in vocab), eos)
    bos = _token_text(self._config.get("bos_token"))
    self.special_tokens = {"eos_token": eos, "bos_token": bos, "pad_token": pad}
    self._ids = {}
    for role, text in self.special_tokens.items():
      if text is None:
        self._ids[role] = None
      elif text in vocab:
        self._ids[role] = vocab[text]
      else:
        raise ValueError(
          f"The {role} {text!r} of {where} is not in its vocabulary; fix {CONFIG_FILE} "
          f"or {SPECIAL_TOKENS_MAP_FILE}."
        )

  # ---------------------------------------------------------------- creation

  @classmethod
  def load(cls, path: str | os.PathLike) -> HFTokenizer:
    """Loads `tokenizer.json` (a file, or a directory holding it) and its special tokens.

    Raises:
      FileNotFoundError: no tokenizer.json at `path`.
      ValueError: a file that is not valid, or special tokens missing from the vocabulary.
    """
    path = epath.Path(path)
    directory, file = (path, path / TOKENIZER_FILE) if path.is_dir() else (path.parent, path)
    if not file.exists():
      raise FileNotFoundError(
        f"No {TOKENIZER_FILE} at {file}; pass a Hugging Face model directory or its "
        f"{TOKENIZER_FILE}."
      )
    files = {TOKENIZER_FILE: file.read_bytes()}
    for name in (CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE):
      if (directory / name).exists():
        files[name] = (directory / name).read_bytes()
    return cls.from_files(files, path=str(file))

  @classmethod
  def from_files(cls, files: Mapping[str, bytes], path: str | None = None) -> HFTokenizer:
    """Rebuilds a tokenizer from file name -> contents, as `files()` returns them.

    `tokenizer.json` is required; `tokenizer_config.json` and `special_tokens_map.json`
    are optional (the map's entries override the config's, as in `transformers`).
    """
    where = path or "the given files"
    if TOKENIZER_FILE not in files:
      raise ValueError(f"{where} has no {TOKENIZER_FILE}; pass the files from files().")
    try:
      tok = tokenizers.Tokenizer.from_str(bytes(files[TOKENIZER_FILE]).decode("utf-8"))
    except Exception as e:  # tokenizers raises its own Exception type for bad JSON.
      raise ValueError(
        f"The {TOKENIZER_FILE} in {where} is not a valid Hugging Face tokenizer ({e}); "
        "copy it again from the model's directory."
      ) from None
    config: dict[str, Any] = {}
    for name in (CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE):
      if name in files:
        try:
          fields = json.loads(bytes(files[name]).decode("utf-8"))
        except ValueError as e:
          raise ValueError(f"The {name} in {where} is not valid JSON ({e}); fix it.") from None
        if not isinstance(fields, dict):
          raise ValueError(f"The {name} in {where} is not a JSON object; fix it.")
        config.update(fields)
    return cls(tok, config, path=path)

  def files(self) -> dict[str, bytes]:
    """`tokenizer.json` and a `tokenizer_config.json` holding the resolved special tokens.

    A model directory carries these (`models.io.save_model`); `from_files` reads them back.
    """
    config = {**self._config, **self.special_tokens}
    return {
      TOKENIZER_FILE: self._tok.to_str().encode("utf-8"),
      CONFIG_FILE: json.dumps(config, indent=2, ensure_ascii=False).encode("utf-8"),
    }

  def __getstate__(self):
    return {"files": self.files(), "path": self.path}

  def __setstate__(self, state):
    other = HFTokenizer.from_files(state["files"], path=state["path"])
    self.__dict__.update(other.__dict__)

  # ---------------------------------------------------------------- ids

  @property
  def vocab_size(self) -> int:
    """1 + the largest id (added tokens included); the model's embedding may be larger."""
    return self._vocab_size

  @property
  def pad_id(self) -> int:
    return self._ids["pad_token"]

  @property
  def eos_id(self) -> int:
    return self._ids["eos_token"]

  @property
  def bos_id(self) -> int | None:
    """The bos id, or None for a model without one (Qwen2.5)."""
    return self._ids["bos_token"]

  def id_to_piece(self, token_id: int) -> str | None:
    return self._tok.id_to_token(int(token_id))

  # ---------------------------------------------------------------- encode/decode

  def _frame(self, add_bos: bool, add_eos: bool) -> tuple[list[int], list[int]]:
    bos = [self.bos_id] if add_bos and self.bos_id is not None else []
    return bos, [self.eos_id] * bool(add_eos)

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of `text`, optionally framed by bos (if the model has one) and eos."""
    bos, eos = self._frame(add_bos, add_eos)
    return bos + self._tok.encode(text, add_special_tokens=False).ids + eos

  def _kept_ids(self, ids: Iterable[int]) -> list[int]:
    """The ids `decode` renders: leading pads dropped, cut at eos, pad/bos/out-of-range out."""
    ids = np.asarray(ids, np.int64).reshape(-1)
    leading_pad = np.cumsum(ids != self.pad_id) == 0
    ends = np.flatnonzero((ids == self.eos_id) & ~leading_pad)
    if ends.size:
      ids = ids[: ends[0]]
    keep = (ids >= 0) & (ids < self._vocab_size) & (ids != self.pad_id)
    if self.bos_id is not None:
      keep &= ids != self.bos_id
    return ids[keep].tolist()

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids`: leading pads skipped, stopping at the next eos, ignoring pad and bos
    and ids outside the vocabulary. Other special tokens are rendered as their text."""
    return self._tok.decode(self._kept_ids(ids), skip_special_tokens=False)

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
    """`Tokenizer.encode_batch` (`add_bos` is a no-op without a bos; pad may equal eos, so
    the mask, not the pad id, tells padding apart)."""
    bos, eos = self._frame(add_bos, add_eos)
    # One call encodes the whole batch (in parallel, in Rust).
    # (encode_batch_fast skips the character offsets; tokenizers < 0.20 lacks it.)
    encode = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
    encodings = encode(list(texts), add_special_tokens=False)
    rows = [bos + e.ids + eos for e in encodings]
    return pack_rows(texts, rows, max_len, self.pad_id, left_pad, truncate)

  def decode_batch(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> list[str]:
    """Decodes each row of a [b, t] array (where `mask` is True, if given)."""
    tokens = np.asarray(tokens)
    if mask is not None:
      rows = [row[m] for row, m in zip(tokens, np.asarray(mask, bool))]
    else:
      rows = list(tokens)
    return self._tok.decode_batch([self._kept_ids(r) for r in rows], skip_special_tokens=False)


def _token_text(value: Any) -> str | None:
  """A special token's text from a config value: a string, an AddedToken dict, or None."""
  if isinstance(value, dict):
    value = value.get("content")
  return value if isinstance(value, str) and value else None
