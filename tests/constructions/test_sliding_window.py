"""U8 (sliding_window): recall iff the pair is in the window; expected accuracy vs measurement (Wilson interval)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

from mqarkit.constructions import build
from mqarkit.constructions._attention_gaps import rank_probabilities, rank_probabilities_exact
from mqarkit.constructions.sliding_window import expected_accuracy, recalled
from mqarkit.oracle import expected_answers, score
from mqarkit.strategies import instances
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close


@given(instances(max_seq_len=48, fillers=("zero", "clean")))
def test_recalls_exactly_the_queries_inside_the_window(inst):
    s, b = inst.spec, inst.batch
    for w in (1, 3, s.seq_len // 2, s.seq_len):
        con = build("sliding_window", vocab_size=s.vocab_size, seq_len=s.seq_len, num_kv_pairs=s.num_kv_pairs, window=w)
        pred = np.take_along_axis(con.predict(b.inputs), b.query_positions, axis=1)
        expected = np.take_along_axis(expected_answers(b), b.query_positions, axis=1)
        assert ((pred == expected) == recalled(b, w)).all()
    assert recalled(b, s.seq_len).all()  # a window as long as the sequence is full attention


def test_rank_probabilities_match_exact_enumeration():
    for S, D, a in [(5, 3, 0.01), (8, 4, 0.5), (9, 2, 1.0)]:
        w = a * np.arange(1, S + 1) ** (a - 1)
        R, err = rank_probabilities(w, D)
        assert err < 1e-12
        assert_close(R, rank_probabilities_exact(w, D))


def _wilson(successes: int, n: int, z: float = 3.2905) -> tuple[float, float]:
    """99.9% Wilson score interval."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("N,D,a,w", [(64, 8, 0.01, 12), (64, 4, 1.0, 24), (64, 8, 0.5, 40)])
def test_expected_accuracy_within_wilson_interval(N, D, a, w):
    spec = MQARSpec(N + 2, N, D, power_a=a, filler="zero")
    batch = generate(spec, 300, np.random.default_rng(N + D + w))
    con = build("sliding_window", vocab_size=N + 2, seq_len=N, num_kv_pairs=D, window=w)
    s = score(con.predict(batch.inputs), batch)
    lo, hi = _wilson(s.num_correct, s.num_queries)
    assert lo <= expected_accuracy(spec, w) <= hi


@pytest.mark.parametrize("c,N,D,w", [(5, 4, 1, 1), (65, 64, 16, 8), (300, 256, 3, 1000)])
def test_claimed_resources_equal_measured(c, N, D, w):
    assert build("sliding_window", vocab_size=c, seq_len=N, num_kv_pairs=D, window=w).resources().mismatches() == {}


def test_bad_input_raises():
    with pytest.raises(ValueError, match="window"):
        build("sliding_window", vocab_size=20, seq_len=16, num_kv_pairs=2)
    with pytest.raises(ValueError, match="window=0"):
        build("sliding_window", vocab_size=20, seq_len=16, num_kv_pairs=2, window=0)
    with pytest.raises(ValueError, match="random"):
        expected_accuracy(MQARSpec(20, 16, 2, filler="random"), 4)
    with pytest.raises(ValueError, match="num_draws"):
        rank_probabilities(np.ones(3), 4)
