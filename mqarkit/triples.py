"""The triple form of MQAR and single-query AR (theory.md section 1.2): the form the theorems are stated in.

An instance is ``u = (k_0, v_0, q_0), ..., (k_{m-1}, v_{m-1}, q_{m-1})``. For each ``i >= 1``: if ``q_i = k_j`` for
some ``j < i`` (strictly earlier *triple*), the answer at triple ``i`` is ``v_j``; otherwise there is none
(:data:`MISS`). ``m`` counts triples; the raw stream has ``3m`` tokens -- keep the two lengths apart.

Raw offsets: on the raw stream key ``j`` sits at ``3j``, value ``j`` at ``3j + 1`` and query ``i`` at ``3i + 2``.
For triple distance ``Delta = i - j >= 1`` the key-to-query offset is ``(3i + 2) - 3j = 3 Delta + 2`` and the
value-to-query offset is ``(3i + 2) - (3j + 1) = 3 Delta + 1`` (erratum 5 of theory.md mixes these up).

Well-posedness: with repeated keys the answer is defined only for a consistent dictionary (equal keys carry equal
values); [F]'s 3-triple counterexample ``(a, 1, _), (a, 2, _), (_, _, a)`` has two answers. The generator draws
unique keys, and :func:`triple_answers` rejects inconsistent dictionaries.

AR (single query) is the special case with one query at the end, compared with *all* keys:
raw stream ``k_0 v_0 ... k_{m-1} v_{m-1} q`` (length ``2m + 1``).

Token layout as in raw MQAR: keys from ``[1, c//2)``, values from ``[c//2, c)``, queries are key tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqarkit.checks import check_int, check_real, check_rng
from mqarkit.memory import check_memory
from mqarkit.sampling import nth_allowed, sample_distinct

MISS = -1


def key_to_query_offset(delta: int) -> int:
    """Raw offset from key ``j`` to query ``i = j + delta``: ``3 delta + 2``."""
    return 3 * check_int("delta", delta, 1) + 2


def value_to_query_offset(delta: int) -> int:
    """Raw offset from value ``j`` to query ``i = j + delta``: ``3 delta + 1``."""
    return 3 * check_int("delta", delta, 1) + 1


def _as_triple_arrays(keys: object, values: object, queries: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for name, arr in (("keys", keys), ("values", values), ("queries", queries)):
        a = np.asarray(arr)
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name}: must be a 2-d integer array (n, m), got {a.dtype}{a.shape}")
        arrays.append(a.astype(np.int64))
    if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
        raise ValueError(f"keys, values, queries: must share one shape (n, m), got {[a.shape for a in arrays]}")
    return arrays[0], arrays[1], arrays[2]


def triples_to_raw(keys: object, values: object, queries: object) -> np.ndarray:
    """Interleave (n, m) keys, values, queries into the raw stream (n, 3m): ``k_0 v_0 q_0 k_1 v_1 q_1 ...``."""
    k, v, q = _as_triple_arrays(keys, values, queries)
    return np.stack([k, v, q], axis=2).reshape(k.shape[0], -1)


def raw_to_triples(raw: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a raw stream (n, 3m) into keys, values, queries (n, m) each (positions 3j, 3j+1, 3j+2)."""
    x = np.asarray(raw)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"raw: must be a 2-d integer array (n, 3m), got {x.dtype}{x.shape}")
    if x.shape[1] % 3:
        raise ValueError(f"raw: length {x.shape[1]} must be a multiple of 3 (whole triples)")
    x = x.astype(np.int64)
    return x[:, 0::3].copy(), x[:, 1::3].copy(), x[:, 2::3].copy()


def _check_consistent(keys: np.ndarray, values: np.ndarray) -> None:
    """Raise unless equal keys carry equal values in every example (a consistent dictionary)."""
    clash = (keys[:, :, None] == keys[:, None, :]) & (values[:, :, None] != values[:, None, :])  # (n, m, m)
    if clash.any():
        b, i, j = np.argwhere(clash)[0]
        raise ValueError(
            f"keys: example {b} repeats key {keys[b, i]} (triples {i} and {j}) with values {values[b, i]} != "
            f"{values[b, j]}; MQAR needs unique keys or a consistent dictionary"
        )


def triple_answers(keys: object, values: object, queries: object) -> np.ndarray:
    """The triple-form oracle: (n, m) int64, ``v_j`` where ``q_i = k_j`` for some ``j < i``, else :data:`MISS`.

    The brute-force definition: an ``(m, m)`` table per example of ``q_i == k_j and j < i`` (pair level, so a query
    equal to its own triple's key, or to a later key, is a miss -- erratum 2). Raises ``ValueError`` on an
    inconsistent dictionary.
    """
    k, v, q = _as_triple_arrays(keys, values, queries)
    _check_consistent(k, v)
    m = k.shape[1]
    hit = (q[:, :, None] == k[:, None, :]) & np.tril(np.ones((m, m), dtype=bool), k=-1)  # (n, i, j)
    first = np.argmax(hit, axis=2)  # (n, m): some matching j (all carry the same value)
    return np.where(hit.any(axis=2), np.take_along_axis(v, first, axis=1), MISS)


@dataclass(frozen=True, eq=False)
class TripleBatch:
    """Triple-form instances: keys, values, queries (n, m) int64 over a vocabulary of ``vocab_size`` tokens."""

    vocab_size: int
    keys: np.ndarray
    values: np.ndarray
    queries: np.ndarray

    def raw(self) -> np.ndarray:
        """The raw stream (n, 3m)."""
        return triples_to_raw(self.keys, self.values, self.queries)

    def answers(self) -> np.ndarray:
        """:func:`triple_answers` of this batch, (n, m)."""
        return triple_answers(self.keys, self.values, self.queries)


def _check_sizes(num_examples: object, num_keys: object, vocab_size: object, hit_rate: object, what: str) -> None:
    """The size rules of both generators; the arrays of one batch (keys, values, queries and the draws behind them,
    ``(n, m)`` int64 / float64 each) must fit in memory."""
    n = check_int("num_examples", num_examples, 1)
    m = check_int(what, num_keys, 1)
    c = check_int("vocab_size", vocab_size, 1, 2**63 - 1)
    if c // 2 - 1 < m:
        raise ValueError(f"vocab_size={c}: needs vocab_size//2 - 1 >= {what}={m} distinct key tokens in [1, c//2)")
    check_real("hit_rate", hit_rate, minimum=0.0, maximum=1.0)
    check_memory(4 * 8 * n * m, parameter=f"num_examples={n}", what=f"the (n, {what}={m}) arrays of the batch")


def generate_triples(
    num_examples: int, num_triples: int, vocab_size: int, rng: np.random.Generator, *, hit_rate: float = 0.5
) -> TripleBatch:
    """Triple-form MQAR instances with unique keys, vectorised over examples (loops over triples only).

    keys: distinct, uniform ordered tuple from ``[1, c//2)``; values: i.i.d. uniform over ``[c//2, c)``.
    query ``q_0`` is uniform over all key tokens (triple 0 has no earlier key, so it is always a miss). For
    ``i >= 1``, with probability ``hit_rate`` ``q_i = k_J`` with ``J`` uniform in ``[0, i)`` (a hit); otherwise
    ``q_i`` is uniform over the key tokens other than ``k_0..k_{i-1}`` (a miss -- it may equal ``k_i`` or a later key,
    which exercises the strict pair-level mask). ``K - i >= 1`` such tokens exist because ``m <= K = c//2 - 1``.
    """
    check_rng(rng)
    _check_sizes(num_examples, num_triples, vocab_size, hit_rate, "num_triples")
    n, m, c = int(num_examples), int(num_triples), int(vocab_size)
    num_key_tokens = c // 2 - 1
    keys = 1 + sample_distinct(rng, num_key_tokens, n, m)  # (n, m)
    values = rng.integers(c // 2, c, size=(n, m), dtype=np.int64)
    is_hit = rng.random((n, m)) < hit_rate  # (n, m)
    is_hit[:, 0] = False
    earlier = np.floor(rng.random((n, m)) * np.arange(m)[None, :]).astype(np.int64)  # J uniform in [0, i)
    queries = np.take_along_axis(keys, earlier, axis=1)
    for i in range(m):
        # rank r uniform in [0, K - i) -> the r-th key token (index in [0, K)) outside k_0..k_{i-1}
        ranks = (np.floor(rng.random(n) * (num_key_tokens - i))).astype(np.int64)[:, None]  # (n, 1)
        excluded = np.sort(keys[:, :i] - 1, axis=1)  # (n, i) token indices in [0, K)
        miss = 1 + nth_allowed(excluded, ranks, num_key_tokens)[:, 0]
        queries[:, i] = np.where(is_hit[:, i], queries[:, i], miss)
    return TripleBatch(vocab_size=c, keys=keys, values=values, queries=queries)


def ar_to_raw(keys: object, values: object, query: object) -> np.ndarray:
    """Single-query AR raw stream (n, 2m+1), ``k_0 v_0 ... k_{m-1} v_{m-1} q``, from keys, values (n, m), query (n,)."""
    k, v, _ = _as_triple_arrays(keys, values, keys)
    q = np.asarray(query)
    if q.shape != (k.shape[0],) or not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"query: must be an integer array of shape ({k.shape[0]},), got {q.dtype}{q.shape}")
    return np.concatenate([np.stack([k, v], axis=2).reshape(k.shape[0], -1), q.astype(np.int64)[:, None]], axis=1)


def ar_answer(keys: object, values: object, query: object) -> np.ndarray:
    """Single-query AR oracle: (n,) int64, the value of the key equal to ``query`` among *all* keys, else MISS."""
    k, v, _ = _as_triple_arrays(keys, values, keys)
    _check_consistent(k, v)
    q = np.asarray(query).astype(np.int64)
    if q.shape != (k.shape[0],):
        raise ValueError(f"query: must have shape ({k.shape[0]},), got {q.shape}")
    hit = k == q[:, None]  # (n, m)
    first = np.argmax(hit, axis=1)[:, None]
    return np.where(hit.any(axis=1), np.take_along_axis(v, first, axis=1)[:, 0], MISS)


def generate_ar(
    num_examples: int, num_keys: int, vocab_size: int, rng: np.random.Generator, *, hit_rate: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Single-query AR instances: keys (n, m) distinct, values (n, m) i.i.d., query (n,).

    With probability ``hit_rate`` the query is one of the keys (uniform), otherwise a uniform key token that is not
    a key of the example (which needs ``c//2 - 1 > m``; with ``hit_rate < 1`` that is checked).
    """
    check_rng(rng)
    _check_sizes(num_examples, num_keys, vocab_size, hit_rate, "num_keys")
    n, m, c = int(num_examples), int(num_keys), int(vocab_size)
    num_key_tokens = c // 2 - 1
    if hit_rate < 1.0 and num_key_tokens == m:
        raise ValueError(f"vocab_size={c}: a miss needs a key token that is not a key; needs vocab_size//2 - 1 > {m}")
    keys = 1 + sample_distinct(rng, num_key_tokens, n, m)
    values = rng.integers(c // 2, c, size=(n, m), dtype=np.int64)
    hit_query = np.take_along_axis(keys, rng.integers(0, m, size=(n, 1)), axis=1)[:, 0]
    if num_key_tokens > m:
        ranks = rng.integers(0, num_key_tokens - m, size=(n, 1))
        miss_query = 1 + nth_allowed(np.sort(keys - 1, axis=1), ranks, num_key_tokens)[:, 0]
    else:
        miss_query = hit_query  # unused: hit_rate == 1 here
    query = np.where(rng.random(n) < hit_rate, hit_query, miss_query)
    return keys, values, query
