"""Vectorised sampling kernels for the task generators: many independent rows at once, no loop over rows.

Three kernels, each with a naive per-row reference beside it (``*_naive``) that the tests compare against:

- :func:`sample_distinct` -- per row, a uniformly random *ordered* tuple of ``k`` distinct integers from ``[0, m)``;
- :func:`sample_weighted_distinct` -- per row, ``k`` distinct indices drawn one after another with probability
  proportional to the weights of the indices not yet drawn (sampling without replacement, "successive sampling");
- :func:`nth_allowed` -- per row, the ``r``-th smallest integer of ``[0, c)`` that is not in a row's excluded set,
  the deterministic core of "uniform over ``[0, c)`` minus a per-row set" (:func:`sample_excluding`).

All randomness comes from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from mqarkit.checks import check_int, check_rows_in_int64


def sample_distinct(rng: np.random.Generator, population: int, num_rows: int, k: int) -> np.ndarray:
    """Per row, a uniformly random ordered ``k``-tuple of distinct integers in ``[0, population)``: (num_rows, k) int64.

    Two exact methods, chosen by the chance ``prod_{i<k} (1 - i/population)`` that ``k`` i.i.d. uniform draws are
    distinct: rejection of whole rows when it is ``>= 1/4`` (fast for ``k << sqrt(population)``), else Floyd's
    algorithm, vectorised over rows: for ``j = population-k, ..., population-1`` draw ``t`` uniform in ``[0, j]``;
    keep ``t`` if it is new in the row, else keep ``j`` (which cannot have been chosen yet, since every earlier pick
    is ``< j``). By induction on ``j`` every ``i``-subset of ``[0, j]`` is equally likely after step ``j``, so the
    final set is a uniform ``k``-subset. Floyd's output order is not uniform, so each row is then put in a uniformly
    random order (argsort of i.i.d. uniforms): the tuple is uniform over all ``population!/(population-k)!`` ordered
    tuples. Floyd costs ``O(num_rows * k^2)`` comparisons, independent of ``population``.
    """
    population, num_rows = check_int("population", population, 0), check_int("num_rows", num_rows, 0)
    k = check_int("k", k, 0)
    if not k <= population:
        raise ValueError(f"k={k}: needs 0 <= k <= population={population}")
    acceptance = float(np.prod(1.0 - np.arange(k) / population))  # P(k i.i.d. uniform draws are distinct)
    if acceptance >= 0.25:
        return _distinct_by_rejection(rng, population, num_rows, k)
    return _distinct_by_floyd(rng, population, num_rows, k)


def _distinct_by_rejection(rng: np.random.Generator, population: int, num_rows: int, k: int) -> np.ndarray:
    """Rows of ``k`` i.i.d. uniform draws, each row with a repeat redrawn whole until it has none: (num_rows, k).

    A proposal is uniform over all ``population^k`` tuples, so an accepted one is uniform over the distinct ones; rows
    are independent. Used when a proposal is accepted with probability ``>= 1/4``, so the expected work is at most
    4 proposals per row and the rows left shrink geometrically.
    """
    out = rng.integers(0, population, size=(num_rows, k), dtype=np.int64)
    todo = np.arange(num_rows)
    while todo.size:
        block = np.sort(out[todo], axis=1)
        todo = todo[(block[:, 1:] == block[:, :-1]).any(axis=1)]  # rows with a repeat
        out[todo] = rng.integers(0, population, size=(todo.size, k), dtype=np.int64)
    return out


def _distinct_by_floyd(rng: np.random.Generator, population: int, num_rows: int, k: int) -> np.ndarray:
    """Floyd's algorithm vectorised over rows, then a uniform shuffle of each row: (num_rows, k)."""
    chosen = np.empty((num_rows, k), dtype=np.int64)
    for step, j in enumerate(range(population - k, population)):
        t = rng.integers(0, j + 1, size=num_rows, dtype=np.int64)  # (num_rows,)
        seen = (chosen[:, :step] == t[:, None]).any(axis=1)  # (num_rows,)
        chosen[:, step] = np.where(seen, j, t)
    order = np.argsort(rng.random((num_rows, k)), axis=1)  # a uniform random permutation per row
    return np.take_along_axis(chosen, order, axis=1)


def sample_distinct_naive(rng: np.random.Generator, population: int, num_rows: int, k: int) -> np.ndarray:
    """Reference for :func:`sample_distinct` (same distribution, different draws): one ``rng.choice`` per row."""
    return np.array([rng.choice(population, size=k, replace=False) for _ in range(num_rows)], dtype=np.int64).reshape(
        num_rows, k
    )


def sample_weighted_distinct(rng: np.random.Generator, weights: np.ndarray, num_rows: int, k: int) -> np.ndarray:
    """Per row, ``k`` distinct indices of ``weights`` (m,) drawn by successive sampling: (num_rows, k) int64.

    Column ``t`` of a row is the ``t``-th draw: index ``i`` with probability ``w_i / sum of w over the indices not
    drawn yet``. This is the law of NumPy's ``choice(m, k, replace=False, p=w/sum(w))``.

    Exponential races (equivalently Gumbel-top-k): give index ``i`` the arrival time ``T_i = E_i / w_i`` with
    ``E_i ~ Exp(1)`` i.i.d., so ``T_i ~ Exp(w_i)``. The first arrival is ``i`` with probability ``w_i / sum w``, and by
    memorylessness the remaining races restart with the same rates, so the arrival order is the successive-sampling
    order. The ``k`` first arrivals are found with ``argpartition`` and then sorted by arrival time.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not (np.isfinite(w).all() and (w > 0).all()):
        raise ValueError("weights: needs a 1-d array of finite positive numbers")
    num_rows, k = check_int("num_rows", num_rows, 0), check_int("k", k, 1)
    if not k <= w.size:
        raise ValueError(f"k={k}: needs 1 <= k <= len(weights)={w.size}")
    times = rng.standard_exponential((num_rows, w.size)) * (1.0 / w)  # (num_rows, m) arrival times
    first = np.argpartition(times, k - 1, axis=1)[:, :k] if k < w.size else np.tile(np.arange(w.size), (num_rows, 1))
    order = np.argsort(np.take_along_axis(times, first, axis=1), axis=1)
    return np.take_along_axis(first, order, axis=1).astype(np.int64)


def sample_weighted_distinct_naive(rng: np.random.Generator, weights: np.ndarray, num_rows: int, k: int) -> np.ndarray:
    """Reference for :func:`sample_weighted_distinct` (same law): one draw at a time, renormalising each time."""
    w = np.asarray(weights, dtype=np.float64)
    out = np.empty((num_rows, k), dtype=np.int64)
    for row in range(num_rows):
        left = w.copy()
        for t in range(k):
            i = int(rng.choice(w.size, p=left / left.sum()))
            out[row, t] = i
            left[i] = 0.0
    return out


def nth_allowed(excluded_sorted: np.ndarray, ranks: np.ndarray, vocab_size: int) -> np.ndarray:
    """The ``ranks[b, t]``-th smallest (0-based) integer of ``[0, vocab_size)`` not in row ``b`` of ``excluded_sorted``.

    excluded_sorted: (n, e) int64, each row strictly increasing, entries in ``[0, vocab_size)``.
    ranks:           (n, k) int64, entries in ``[0, vocab_size - e)``.
    returns:         (n, k) int64.

    Derivation: let ``s_0 < ... < s_{e-1}`` be a row's excluded integers and ``a_0 < a_1 < ...`` the allowed ones.
    ``s'_i = s_i - i`` counts the allowed integers below ``s_i``, so ``s_i < a_r`` iff ``s'_i <= r``, and
    ``a_r = r + #{i : s'_i <= r}``. ``s'`` is non-decreasing in a row, so the count is a ``searchsorted``. All rows are
    searched in one call by shifting row ``b`` by ``b * (vocab_size + 1)``, which keeps the concatenation sorted
    (every shifted ``s'`` and rank of row ``b`` lies in ``[b (c+1), b (c+1) + c]``).
    """
    n, e = excluded_sorted.shape
    check_rows_in_int64(n, vocab_size + 1, what="excluded_sorted")
    shift = (np.arange(n, dtype=np.int64) * (vocab_size + 1))[:, None]  # (n, 1)
    below = excluded_sorted - np.arange(e, dtype=np.int64)[None, :] + shift  # (n, e) s'_i, shifted per row
    counts = np.searchsorted(below.ravel(), (ranks + shift).ravel(), side="right").reshape(ranks.shape)
    counts -= (np.arange(n, dtype=np.int64) * e)[:, None]  # drop the entries of earlier rows
    return ranks + counts


def nth_allowed_naive(excluded_sorted: np.ndarray, ranks: np.ndarray, vocab_size: int) -> np.ndarray:
    """Reference for :func:`nth_allowed`: list each row's allowed integers and index them."""
    out = np.empty_like(ranks)
    for b in range(ranks.shape[0]):
        allowed = np.setdiff1d(np.arange(vocab_size), excluded_sorted[b])
        out[b] = allowed[ranks[b]]
    return out


def sample_excluding(rng: np.random.Generator, excluded: np.ndarray, vocab_size: int, k: int) -> np.ndarray:
    """Per row ``b``, ``k`` i.i.d. tokens uniform over ``[0, vocab_size)`` minus the set ``excluded[b]``: (n, k) int64.

    excluded: (n, e) int64 with distinct entries in each row (any order). Draws ranks uniform in
    ``[0, vocab_size - e)`` and maps them through :func:`nth_allowed`.
    """
    excluded = np.asarray(excluded)
    if excluded.ndim != 2 or not np.issubdtype(excluded.dtype, np.integer):
        raise ValueError(f"excluded: must be a 2-d integer array (n, e), got {excluded.dtype}{excluded.shape}")
    vocab_size, k = check_int("vocab_size", vocab_size, 1), check_int("k", k, 0)
    n, e = excluded.shape
    if e >= vocab_size:
        raise ValueError(f"excluded: {e} excluded tokens leave none of vocab_size={vocab_size} to draw from")
    ranks = rng.integers(0, vocab_size - e, size=(n, k), dtype=np.int64)
    return nth_allowed(np.sort(excluded, axis=1), ranks, vocab_size)
