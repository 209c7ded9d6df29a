"""Position gates and interaction distances of the raw-token MQAR layout, shared by the BaseConv constructions.

Glossary (theory.md §1.1): ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``, ``s`` = an interaction distance (lag).

The raw-token layout of Zoology's generator: key ``j`` at the even position ``p = 2j < 2D``, its value at ``p + 1``,
and every query at an even position ``i >= 2D``. A query at ``i`` for the key at ``p`` is at *lag* ``s = i - p`` (even,
``2 <= s <= N - 1``) and its value sits at lag ``s - 1`` (erratum 5: in raw-token form the value follows its key by
one position, so the value offset is the key offset minus one, not a triple offset).

The position gate of lag ``s`` (erratum 6: "keys only" is a property of *positions*, so it is carried by
position-dependent biases, never by a shared projection ``W``):

    G_s[i] = 1[i >= 2D, i even] * 1[i - s is a key position]  =  1[i >= 2D, i even] * 1[0 <= i - s < 2D, i - s even].

With it, the contribution of lag ``s`` at ``i`` is non-zero only when ``i`` is a query slot and ``i - s`` a key slot, so
filler tokens (even ones equal to a key) and repeated query tokens can never be mistaken for keys.
"""

from __future__ import annotations

import numpy as np


def query_gate(seq_len: int, num_kv_pairs: int) -> np.ndarray:
    """``(N,)`` float64: 1 at the query slots ``i >= 2D``, ``i`` even; 0 elsewhere."""
    i = np.arange(seq_len)
    return ((i >= 2 * num_kv_pairs) & (i % 2 == 0)).astype(np.float64)


def key_gate(seq_len: int, num_kv_pairs: int) -> np.ndarray:
    """``(N,)`` float64: 1 at the key slots ``i < 2D``, ``i`` even; 0 elsewhere."""
    i = np.arange(seq_len)
    return ((i < 2 * num_kv_pairs) & (i % 2 == 0)).astype(np.float64)


def lag_gate(seq_len: int, num_kv_pairs: int, lag: int) -> np.ndarray:
    """``(N,)`` float64: ``G_s[i] = 1[i query slot] * 1[i - s key slot]`` (``G_s[i] = 0`` when ``i < s``)."""
    if lag < 1:
        raise ValueError(f"lag={lag}: must be >= 1 (a query never matches itself)")
    gate = query_gate(seq_len, num_kv_pairs).copy()
    keys = key_gate(seq_len, num_kv_pairs)
    shifted = np.zeros(seq_len)
    shifted[lag:] = keys[: seq_len - lag] if lag < seq_len else []
    return gate * shifted


def all_lags(seq_len: int) -> list[int]:
    """Every distance at which a query can meet its key: the even ``s`` with ``2 <= s <= N - 1``.

    Each of them occurs for some layout (key at ``p = max(0, 2D - s)`` or so, query at ``p + s``); there are
    ``floor((N - 1) / 2)`` of them."""
    return list(range(2, seq_len, 2))


def needed_lags(tokens: np.ndarray, num_kv_pairs: int) -> list[int]:
    """The distances ``i - p`` between each query slot ``i`` whose token equals the key at slot ``p`` (sorted).

    ``tokens`` (N,) int. These are the lags the input-dependent construction must cover on this input."""
    tokens = np.asarray(tokens)
    n = tokens.shape[0]
    key_pos = {int(tokens[p]): p for p in range(0, min(2 * num_kv_pairs, n), 2)}
    lags = {i - key_pos[int(tokens[i])] for i in range(2 * num_kv_pairs, n, 2) if int(tokens[i]) in key_pos}
    return sorted(lags)


def autocorrelation(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """``(N,)`` int64: ``A[s] = sum_i <e(x_i), e(x_{i-s})> = #{i : x_i = x_{i-s}}`` (one-hot autocorrelation; A[0] = N).

    [Z] proposes the top-``t`` peaks of this function as the input-dependent filter lags."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"tokens: ids must lie in [0, vocab_size={vocab_size})")
    n = tokens.shape[0]
    return np.array([int(np.sum(tokens[s:] == tokens[: n - s])) for s in range(n)], dtype=np.int64)


def top_autocorrelation_lags(tokens: np.ndarray, vocab_size: int, t: int) -> list[int]:
    """The ``t`` lags ``s in [1, N)`` with the largest autocorrelation, ties broken towards the smaller lag (sorted)."""
    a = autocorrelation(tokens, vocab_size)
    n = a.shape[0]
    if not 1 <= t <= n - 1:
        raise ValueError(f"t={t}: needs 1 <= t <= seq_len - 1 = {n - 1}")
    order = sorted(range(1, n), key=lambda s: (-int(a[s]), s))
    return sorted(order[:t])
