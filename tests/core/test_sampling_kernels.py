"""The vectorised sampling kernels against their naive references and against the exact laws they claim."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqarkit.sampling import (
    nth_allowed,
    nth_allowed_naive,
    sample_distinct,
    sample_distinct_naive,
    sample_excluding,
    sample_weighted_distinct,
    sample_weighted_distinct_naive,
)

# Upper 0.1% quantiles of the chi-square distribution (from tables), for the goodness-of-fit checks below. The seeds
# are fixed, so each check is deterministic; the quantile only says how unlucky a correct sampler would have to be.
CHI2_999 = {5: 20.52, 6: 22.46, 11: 31.26, 19: 43.82, 59: 95.75, 119: 166.0}


def chi_square(counts: dict[tuple[int, ...], int], probs: dict[tuple[int, ...], float], total: int) -> float:
    assert set(counts) <= set(probs), f"outcomes outside the support: {set(counts) - set(probs)}"
    return sum((counts.get(o, 0) - total * p) ** 2 / (total * p) for o, p in probs.items())


def tally(rows: np.ndarray) -> dict[tuple[int, ...], int]:
    keys, counts = np.unique(rows, axis=0, return_counts=True)
    return {tuple(int(v) for v in k): int(c) for k, c in zip(keys, counts)}


@given(
    data=st.data(),
    vocab=st.integers(1, 40),
    n=st.integers(1, 5),
)
def test_nth_allowed_matches_naive(data: st.DataObject, vocab: int, n: int) -> None:
    e = data.draw(st.integers(0, vocab - 1))
    excluded = np.array(
        [sorted(data.draw(st.lists(st.integers(0, vocab - 1), min_size=e, max_size=e, unique=True))) for _ in range(n)],
        dtype=np.int64,
    ).reshape(n, e)
    k = data.draw(st.integers(1, 6))
    ranks = np.array(data.draw(st.lists(st.integers(0, vocab - e - 1), min_size=n * k, max_size=n * k))).reshape(n, k)
    assert np.array_equal(nth_allowed(excluded, ranks, vocab), nth_allowed_naive(excluded, ranks, vocab))


def test_sample_excluding_is_uniform_off_the_excluded_set() -> None:
    rng = np.random.default_rng(1)
    excluded = np.array([[0, 3, 7], [1, 2, 9]])  # two rows, vocabulary 10 -> 7 allowed tokens each
    draws = sample_excluding(rng, excluded, 10, 20_000)  # (2, 20000)
    for b in range(2):
        allowed = sorted(set(range(10)) - set(excluded[b].tolist()))
        counts = tally(draws[b][:, None])
        assert set(counts) == {(t,) for t in allowed}
        probs = {(t,): 1 / len(allowed) for t in allowed}
        assert chi_square(counts, probs, 20_000) < CHI2_999[6]


def test_sample_excluding_rejects_a_full_exclusion() -> None:
    with pytest.raises(ValueError, match="excluded"):
        sample_excluding(np.random.default_rng(0), np.arange(4)[None, :], 4, 1)


@pytest.mark.parametrize(("population", "k", "method"), [(5, 3, "rejection"), (5, 5, "floyd")])
def test_sample_distinct_is_uniform_over_ordered_tuples(population: int, k: int, method: str) -> None:
    acceptance = float(np.prod(1 - np.arange(k) / population))
    assert (acceptance >= 0.25) == (method == "rejection")  # the case exercises the intended branch
    outcomes = list(itertools.permutations(range(population), k))
    probs = {o: 1 / len(outcomes) for o in outcomes}
    rows = sample_distinct(np.random.default_rng(7), population, 60_000, k)
    assert rows.dtype == np.int64 and rows.shape == (60_000, k)
    assert chi_square(tally(rows), probs, 60_000) < CHI2_999[len(outcomes) - 1]
    naive = sample_distinct_naive(np.random.default_rng(7), population, 6_000, k)
    assert chi_square(tally(naive), probs, 6_000) < CHI2_999[len(outcomes) - 1]


def test_sample_distinct_large_population_rows_are_distinct() -> None:
    rows = sample_distinct(np.random.default_rng(3), 4095, 2_000, 64)
    assert ((rows >= 0) & (rows < 4095)).all()
    s = np.sort(rows, axis=1)
    assert (s[:, 1:] != s[:, :-1]).all()


def test_sample_distinct_rejects_k_above_population() -> None:
    with pytest.raises(ValueError, match="k=6"):
        sample_distinct(np.random.default_rng(0), 5, 1, 6)


def successive_law(w: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    law = {}
    for o in itertools.permutations(range(w.size), k):
        p, left = 1.0, float(w.sum())
        for i in o:
            p *= w[i] / left
            left -= w[i]
        law[o] = p
    return law


@pytest.mark.parametrize(("weights", "k"), [((1.0, 2.0, 3.0, 4.0), 2), ((5.0, 1.0, 0.5, 2.0, 1.5), 2), ((1, 2, 3), 3)])
def test_sample_weighted_distinct_follows_successive_sampling(weights: tuple[float, ...], k: int) -> None:
    w = np.asarray(weights, dtype=np.float64)
    law = successive_law(w, k)
    rows = sample_weighted_distinct(np.random.default_rng(11), w, 80_000, k)
    assert chi_square(tally(rows), law, 80_000) < CHI2_999[len(law) - 1]
    naive = sample_weighted_distinct_naive(np.random.default_rng(11), w, 4_000, k)
    assert chi_square(tally(naive), law, 4_000) < CHI2_999[len(law) - 1]


@pytest.mark.parametrize(
    ("weights", "k", "field"), [((1.0, -1.0), 1, "weights"), ((1.0, np.inf), 1, "weights"), ((1.0,), 2, "k=2")]
)
def test_sample_weighted_distinct_rejects_bad_input(weights: tuple[float, ...], k: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        sample_weighted_distinct(np.random.default_rng(0), np.asarray(weights), 1, k)
