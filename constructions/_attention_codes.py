"""Token codes, the previous-token shift and the argmax readout shared by the attention-family constructions.

Glossary (theory.md §1.3): ``c`` = ``vocab_size``; ``e_t`` the one-hot code of token ``t`` (width ``c``);
``s(t) in {-1,+1}^m`` the sign code of ``t`` (bit ``b`` of ``t``, least significant first, mapped ``0 -> -1``,
``1 -> +1``), ``m = ceil(log2 c)``. Two distinct tokens differ in at least one of their ``m`` bits, so for the
scaled codes ``s(t)/sqrt(m)``: ``<s(t), s(t)>/m = 1`` and ``<s(t), s(u)>/m = 1 - 2 ham(t, u)/m <= 1 - 2/m``.
"""

from __future__ import annotations

import math

import numpy as np


def sign_code_width(vocab_size: int) -> int:
    """``m = ceil(log2 c)``, at least 2 (a width-1 code has non-match score ``-1 < 0``; see attention_signcode)."""
    return max(2, math.ceil(math.log2(vocab_size)))


def check_code_width(code_width: int, vocab_size: int) -> None:
    """Raise ``ValueError`` unless ``2 <= code_width`` and ``2**code_width >= vocab_size`` (codes are distinct)."""
    if isinstance(code_width, bool) or not isinstance(code_width, (int, np.integer)):
        raise ValueError(f"code_width={code_width!r}: must be an int")
    if code_width < 2:
        raise ValueError(f"code_width={code_width}: must be >= 2 (a 1-bit code cannot keep non-matches below 0)")
    if 2**code_width < vocab_size:
        raise ValueError(
            f"code_width={code_width}: sign codes of width {code_width} cannot separate vocab_size={vocab_size} "
            f"tokens (needs 2**code_width >= vocab_size)"
        )


def sign_bits(vocab_size: int, width: int) -> np.ndarray:
    """``B[t, b] = +1`` if bit ``b`` of ``t`` is set else ``-1``: (c, width) int64, rows distinct when 2**width >= c."""
    t = np.arange(vocab_size, dtype=np.int64)[:, None]  # (c, 1)
    bits = (t >> np.arange(width, dtype=np.int64)[None, :]) & 1  # (c, width)
    return 2 * bits - 1


def one_hot(vocab_size: int) -> np.ndarray:
    """The identity codebook ``E[t] = e_t``: (c, c) int64."""
    return np.eye(vocab_size, dtype=np.int64)


def shift_down(x: np.ndarray) -> np.ndarray:
    """``y[..., i, :] = x[..., i-1, :]`` and ``y[..., 0, :] = 0`` (the causal impulse ``X^1``): same shape as x."""
    y = np.zeros_like(x)
    y[..., 1:, :] = x[..., :-1, :]
    return y


def argmax_readout(out: np.ndarray, codebook: np.ndarray, token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``argmax_u <out, codebook[u]>`` over candidates ``token_ids``; ties go to the first candidate.

    out: (..., d) float64; codebook: (K, d); token_ids: (K,) int64.
    Returns (predictions (...,) int64, scores (..., K) float64).
    """
    scores = out @ np.asarray(codebook, dtype=np.float64).T  # (..., K)
    return np.asarray(token_ids, dtype=np.int64)[np.argmax(scores, axis=-1)], scores


def readout_margins(scores: np.ndarray, token_ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``score(target) - max_{u != target} score(u)`` at each position: (...,) float64 (> 0 iff correct, no tie).

    scores: (..., K); token_ids: (K,); targets: (...,) int64, each in ``token_ids``.
    """
    ids = np.asarray(token_ids, dtype=np.int64)
    index = np.searchsorted(ids, targets) if np.all(ids[1:] > ids[:-1]) else None
    if index is None or not np.all(ids[np.clip(index, 0, len(ids) - 1)] == targets):
        raise ValueError("targets: every target must be one of token_ids (sorted ascending)")
    target_scores = np.take_along_axis(scores, index[..., None], axis=-1)[..., 0]
    others = scores.copy()
    np.put_along_axis(others, index[..., None], -np.inf, axis=-1)
    return target_scores - others.max(axis=-1)


def check_lookup_sizes(
    construction: str,
    known_knobs: tuple[str, ...] | list[str],
    knobs: dict,
    *,
    vocab_size: int,
    seq_len: int,
    num_kv_pairs: int,
    min_vocab: int = 2,
) -> None:
    """The size rules shared by the attention-family lookups (``ValueError`` naming the field and the rule):
    no unknown knobs, ``vocab_size >= min_vocab``, ``seq_len >= 2``, ``1 <= num_kv_pairs`` and ``4 D <= N``."""
    unknown = set(knobs) - set(known_knobs)
    if unknown:
        raise ValueError(f"knobs {sorted(unknown)}: unknown for {construction!r}; known knobs: {sorted(known_knobs)}")
    if vocab_size < min_vocab:
        raise ValueError(f"vocab_size={vocab_size}: needs at least {min_vocab} tokens")
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len}: needs at least 2 positions (a pair and a query)")
    if not 1 <= num_kv_pairs or 4 * num_kv_pairs > seq_len:
        raise ValueError(
            f"num_kv_pairs={num_kv_pairs}: needs 1 <= num_kv_pairs and 4*num_kv_pairs <= seq_len={seq_len}"
        )
