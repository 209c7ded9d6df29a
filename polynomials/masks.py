"""Attention masks: which keys ``j`` a query ``i`` may read.

- ``"causal"``: ``j <= i`` (a token sees itself, as in Zoology's MHA);
- ``"strict"``: ``j < i`` (theory.md §3 U1 [fixed]); row 0 has no allowed key and its output is 0;
- ``"window"`` with width ``w >= 1``: ``i - w < j <= i``, i.e. exactly ``w`` keys including ``i`` itself. (Zoology's
  sliding-window reference admits ``w + 1`` keys, ``i - w <= j <= i``; to reproduce it pass ``window=w + 1``.)
"""

from __future__ import annotations

import numpy as np

MASKS = ("causal", "strict", "window")


def check_mask(op: str, mask: object, window: object) -> None:
    if mask not in MASKS:
        raise ValueError(f"{op}.mask={mask!r}: must be one of {MASKS}")
    if mask == "window":
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"{op}.window={window!r}: mask='window' needs an int window >= 1")
    elif window is not None:
        raise ValueError(f"{op}.window={window!r}: only mask='window' takes a window (mask={mask!r})")


def allowed(mask: str, seq_len: int, window: int | None = None) -> np.ndarray:
    """``(N, N)`` bool: entry ``[i, j]`` is True when query ``i`` may read key ``j``."""
    i = np.arange(seq_len)[:, None]
    j = np.arange(seq_len)[None, :]
    if mask == "causal":
        return j <= i
    if mask == "strict":
        return j < i
    if mask == "window":
        assert window is not None
        return (j <= i) & (j > i - window)
    raise ValueError(f"mask={mask!r}: must be one of {MASKS}")


def allowed_pairs(mask: str, seq_len: int, window: int | None = None) -> int:
    return int(allowed(mask, seq_len, window).sum())


def visible_keys(mask: str, seq_len: int, window: int | None = None) -> int:
    """Keys a recurrent form must keep: ``N`` for causal/strict, ``min(w, N)`` for a window of width ``w``."""
    return min(int(window), seq_len) if mask == "window" else seq_len
