"""Packing token rows into fixed-width, padded arrays: shared by every tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np


def pack_rows(
  texts: Sequence[str],
  rows: Sequence[list[int]],
  max_len: int,
  pad_id: int,
  left_pad: bool,
  truncate: Literal["left", "right"] | None,
) -> tuple[np.ndarray, np.ndarray]:
  """Packs token rows into (tokens_bp int32, mask_bp bool) of width `max_len`.

  Shared by every tokenizer's `encode_batch`. A row longer than `max_len` is an
  error naming its text, unless `truncate` says which end to drop.
  """
  tokens_bp = np.full((len(rows), max_len), pad_id, np.int32)
  mask_bp = np.zeros((len(rows), max_len), bool)
  for row, (text, ids) in enumerate(zip(texts, rows)):
    if len(ids) > max_len:
      if truncate is None:
        raise ValueError(
          f"Text {row} has {len(ids)} tokens, more than max_len={max_len} "
          f"({text[:40]!r}...); raise max_len or pass truncate='left' or 'right'."
        )
      ids = ids[len(ids) - max_len :] if truncate == "left" else ids[:max_len]
    n = len(ids)
    if n == 0:
      continue
    sl = slice(max_len - n, max_len) if left_pad else slice(0, n)
    tokens_bp[row, sl] = ids
    mask_bp[row, sl] = True
  return tokens_bp, mask_bp
