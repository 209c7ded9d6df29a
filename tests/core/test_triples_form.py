"""Triple form and single-query AR: converters, offsets, generator, oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqarkit.triples import (
    MISS,
    ar_answer,
    ar_to_raw,
    generate_ar,
    generate_triples,
    key_to_query_offset,
    raw_to_triples,
    triple_answers,
    triples_to_raw,
    value_to_query_offset,
)


def answers_by_loop(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    out = np.full(keys.shape, MISS, dtype=np.int64)
    for b in range(keys.shape[0]):
        for i in range(keys.shape[1]):
            for j in range(i):
                if queries[b, i] == keys[b, j]:
                    out[b, i] = values[b, j]
    return out


@given(n=st.integers(1, 4), m=st.integers(1, 30), c=st.integers(0, 40), seed=st.integers(0, 2**32 - 1),
       hit_rate=st.sampled_from([0.0, 0.3, 0.5, 1.0]))  # fmt: skip
def test_generated_triples(n: int, m: int, c: int, seed: int, hit_rate: float) -> None:
    vocab = 2 * (m + 1) + c  # smallest vocabularies allowed: c//2 - 1 >= m
    batch = generate_triples(n, m, vocab, np.random.default_rng(seed), hit_rate=hit_rate)
    k, v, q = batch.keys, batch.values, batch.queries
    assert k.shape == v.shape == q.shape == (n, m)
    assert ((k >= 1) & (k < vocab // 2)).all() and ((q >= 1) & (q < vocab // 2)).all()
    assert ((v >= vocab // 2) & (v < vocab)).all()
    assert all(len(set(row)) == m for row in k.tolist())  # unique keys
    answers = batch.answers()
    assert np.array_equal(answers, answers_by_loop(k, v, q))
    assert (answers[:, 0] == MISS).all()
    if hit_rate == 1.0:
        assert (answers[:, 1:] != MISS).all()
    if hit_rate == 0.0:
        assert (answers == MISS).all()
    # raw layout and offsets
    raw = batch.raw()
    assert raw.shape == (n, 3 * m)
    kk, vv, qq = raw_to_triples(raw)
    assert np.array_equal(kk, k) and np.array_equal(vv, v) and np.array_equal(qq, q)
    for b, i in zip(*np.nonzero(answers != MISS)):
        (j,) = np.nonzero(k[b] == q[b, i])[0]
        delta = i - j
        query_pos = 3 * i + 2
        assert raw[b, query_pos - key_to_query_offset(delta)] == raw[b, query_pos]  # the key it recalls
        assert raw[b, query_pos - value_to_query_offset(delta)] == answers[b, i]  # the value it returns


def test_hit_rate_is_respected_on_average() -> None:
    batch = generate_triples(2000, 10, 64, np.random.default_rng(3), hit_rate=0.3)
    hits = (batch.answers()[:, 1:] != MISS).mean()
    assert abs(hits - 0.3) < 0.02


def test_offsets() -> None:
    assert [key_to_query_offset(d) for d in (1, 2, 5)] == [5, 8, 17]
    assert [value_to_query_offset(d) for d in (1, 2, 5)] == [4, 7, 16]


def test_query_equal_to_its_own_key_is_a_miss() -> None:
    # strict pair-level mask (erratum 2): q_1 = k_1 is not an earlier key; q_2 = k_0 is
    keys, values, queries = np.array([[3, 4, 5]]), np.array([[10, 11, 12]]), np.array([[3, 4, 3]])
    assert triple_answers(keys, values, queries).tolist() == [[MISS, MISS, 10]]


def test_inconsistent_dictionary_is_rejected_and_consistent_one_accepted() -> None:
    # [F]'s counterexample: (a, 1, _), (a, 2, _), (_, _, a) has two answers for the last query
    a = 7
    with pytest.raises(ValueError, match="keys: example 0 repeats key 7"):
        triple_answers([[a, a, 2]], [[1, 2, 3]], [[5, 5, a]])
    assert triple_answers([[a, a, 2]], [[1, 1, 3]], [[5, 5, a]]).tolist() == [[MISS, MISS, 1]]


def test_converters_validate() -> None:
    with pytest.raises(ValueError, match="multiple of 3"):
        raw_to_triples(np.zeros((1, 7), dtype=np.int64))
    with pytest.raises(ValueError, match="raw"):
        raw_to_triples(np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match="keys, values, queries: must share one shape"):
        triples_to_raw(np.zeros((1, 2), dtype=np.int64), np.zeros((1, 3), dtype=np.int64), np.zeros((1, 2), dtype=int))
    with pytest.raises(ValueError, match="values"):
        triples_to_raw(np.zeros((1, 2), dtype=np.int64), np.zeros((1, 2)), np.zeros((1, 2), dtype=np.int64))


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((0, 4, 64), {}, "num_examples"),
        ((2, 0, 64), {}, "num_triples"),
        ((2, 4, 9), {}, "vocab_size"),
        ((2, 4, 64), {"hit_rate": 1.5}, "hit_rate"),
        ((2, True, 64), {}, "num_triples"),
    ],
)
def test_generate_triples_validates(args: tuple, kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        generate_triples(*args, np.random.default_rng(0), **kwargs)


def test_generators_require_a_generator() -> None:
    with pytest.raises(TypeError, match="rng"):
        generate_triples(1, 2, 16, np.random.RandomState(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rng"):
        generate_ar(1, 2, 16, 0)  # type: ignore[arg-type]


@given(n=st.integers(1, 50), m=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
       hit_rate=st.sampled_from([0.0, 0.5, 1.0]))  # fmt: skip
def test_single_query_ar(n: int, m: int, seed: int, hit_rate: float) -> None:
    vocab = 2 * (m + 2)
    keys, values, query = generate_ar(n, m, vocab, np.random.default_rng(seed), hit_rate=hit_rate)
    answer = ar_answer(keys, values, query)
    by_loop = [next((v for k, v in zip(ks, vs) if k == q), MISS) for ks, vs, q in zip(keys, values, query)]
    assert answer.tolist() == by_loop
    if hit_rate == 1.0:
        assert (answer != MISS).all()
    if hit_rate == 0.0:
        assert (answer == MISS).all()
    raw = ar_to_raw(keys, values, query)
    assert raw.shape == (n, 2 * m + 1)
    assert np.array_equal(raw[:, 0:-1:2], keys) and np.array_equal(raw[:, 1:-1:2], values)
    assert np.array_equal(raw[:, -1], query)


def test_ar_validates() -> None:
    with pytest.raises(ValueError, match="vocab_size=10"):
        generate_ar(2, 4, 10, np.random.default_rng(0), hit_rate=0.5)  # 4 key tokens, all keys: no miss possible
    assert (ar_answer(*generate_ar(2, 4, 10, np.random.default_rng(0), hit_rate=1.0)) != MISS).all()
    with pytest.raises(ValueError, match="query"):
        ar_to_raw(np.ones((2, 3), dtype=np.int64), np.ones((2, 3), dtype=np.int64), np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match="query"):
        ar_answer(np.ones((2, 3), dtype=np.int64), np.ones((2, 3), dtype=np.int64), np.ones(3, dtype=np.int64))
