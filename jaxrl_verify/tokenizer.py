"""The `Tokenizer` protocol every tokenizer implements, and `load_any` to load one.

Two implementations: `sp_tokenizer.SentencePieceTokenizer` (trained offline on the task
corpus) and `hf_tokenizer.HFTokenizer` (a Hugging Face `tokenizer.json`, e.g. Qwen2.5's or
Llama-3's). The data pipeline, sampler, trainer and CLIs are written against the protocol.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Tokenizer(Protocol):
  """Text <-> token ids, with left-padded batch helpers for prompts.

  Attributes:
    path: the file the tokenizer was loaded from or saved to, or None.
    vocab_size: number of ids (the model's vocabulary must hold at least these).
    pad_id: the padding id (may equal `eos_id` for some HF tokenizers; masks tell them apart).
    eos_id: the id that ends a completion.
    bos_id: the begin-of-sequence id, or None when the model has none.
  """

  path: str | None

  @property
  def vocab_size(self) -> int: ...

  @property
  def pad_id(self) -> int: ...

  @property
  def eos_id(self) -> int: ...

  @property
  def bos_id(self) -> int | None: ...

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of `text`, optionally framed by bos/eos."""
    ...

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids`, stopping at the first eos and skipping pad/bos."""
    ...

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
    """Encodes and pads texts to a fixed length (static shapes for jit).

    Args:
      texts: b strings.
      max_len: p, the padded length.
      left_pad: pad on the left (prompts, so generation continues at the right).
      add_bos: prepend bos to each row. add_eos: append eos to each row.
      truncate: None raises when a text is longer than `max_len`; `left` drops its
        first tokens, `right` its last (see `token_rows.pack_rows`).

    Returns:
      tokens_bp: int32 [b, p], pad id where not real. mask_bp: bool [b, p].
    """
    ...

  def decode_batch(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> list[str]:
    """Decodes each row of a [b, t] array (where `mask` is True, if given)."""
    ...

  def files(self) -> dict[str, bytes]:
    """File name -> contents, for a model directory (`models.io.save_model`)."""
    ...


def load_any(path: str | os.PathLike):
  """The tokenizer at `path`: a Hugging Face `tokenizer.json` or a sentencepiece `.model`.

  Args:
    path: a `tokenizer.json` file (its directory's `tokenizer_config.json` and
      `special_tokens_map.json` name the special tokens), a sentencepiece `.model` file,
      or a directory holding either. A directory with both (e.g. a Llama-2 or Gemma
      Hugging Face export) gives the `tokenizer.json`: `transformers` uses that one too,
      and its config names the special tokens.

  Returns:
    A `jaxrl_verify.hf_tokenizer.HFTokenizer` or a `SentencePieceTokenizer`.

  Raises:
    FileNotFoundError: `path` is neither kind of file nor a directory holding one.
  """
  # Lazy: each implementation imports its library (etils, tokenizers, sentencepiece) only here.
  from etils import epath

  from jaxrl_verify.sp_tokenizer import MODEL_FILENAME, SentencePieceTokenizer

  p = epath.Path(path)
  hf_file = None
  if p.is_dir():
    if (p / "tokenizer.json").exists():
      hf_file = p / "tokenizer.json"
    elif (p / MODEL_FILENAME).exists():
      p = p / MODEL_FILENAME
  elif p.name.endswith(".json") and p.exists():
    hf_file = p
  if hf_file is not None:
    from jaxrl_verify.hf_tokenizer import HFTokenizer

    return HFTokenizer.load(hf_file)
  if p.is_file() and not p.name.endswith(".json"):
    return SentencePieceTokenizer.from_serialized(p.read_bytes(), path=str(p))
  raise FileNotFoundError(
    f"No tokenizer at {path}: expected a Hugging Face tokenizer.json, a sentencepiece "
    f".model file, or a directory holding tokenizer.json or {MODEL_FILENAME}."
  )
