"""U9 (based_taylor): one-hot values exact; compact values vs the predicted recall; kernel identities; resources."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from mqarkit.constructions import build
from mqarkit.constructions.based_taylor import feature_width, predicted_recall, state_for_recall, taylor_kernel
from mqarkit.oracle import score
from mqarkit.strategies import instances
from mqarkit.task import MQARSpec, generate


@given(instances(max_seq_len=64, fillers=("zero",)))
def test_onehot_values_solve_every_zero_filler_instance(inst):
    s = inst.spec
    con = build("based_taylor", vocab_size=s.vocab_size, seq_len=s.seq_len, num_kv_pairs=s.num_kv_pairs)
    assert score(con.predict(inst.batch.inputs), inst.batch).accuracy == 1.0


def test_exact_backend_agrees():
    spec = MQARSpec(24, 16, 4)
    batch = generate(spec, 2, np.random.default_rng(0))
    con = build("based_taylor", vocab_size=24, seq_len=16, num_kv_pairs=4)
    assert (con.predict(batch.inputs, "exact") == con.predict(batch.inputs)).all()
    assert score(con.predict(batch.inputs, "exact"), batch).accuracy == 1.0


def test_kernel_gap_is_2m():
    for m in range(2, 12):
        scores = np.arange(-m, m - 1, 2)  # every non-match raw score
        assert taylor_kernel(m) - taylor_kernel(scores).max() == 2 * m


@pytest.mark.parametrize("c,N,D", [(128, 64, 4), (128, 64, 8), (128, 64, 16)])
def test_compact_values_match_predicted_recall(c, N, D):
    spec = MQARSpec(c, N, D)
    batch = generate(spec, 100, np.random.default_rng(D))
    con = build("based_taylor", vocab_size=c, seq_len=N, num_kv_pairs=D, values="signcode")
    measured = score(con.predict(batch.inputs), batch).accuracy
    assert abs(measured - predicted_recall(c, D)) < 0.08  # CLT approximation; measured gaps <= 0.04 here


@pytest.mark.parametrize("c,N,D,values", [(5, 4, 1, "onehot"), (65, 64, 16, "signcode"), (300, 256, 3, "onehot")])
def test_claimed_resources_equal_measured(c, N, D, values):
    con = build("based_taylor", vocab_size=c, seq_len=N, num_kv_pairs=D, values=values)
    report = con.resources()
    assert report.mismatches() == {}
    assert report.measured.state_numbers == c + state_for_recall(c, D, values)


def test_feature_width_matches_paper_counts():
    assert [feature_width(d) for d in (8, 16, 24, 32)] == [45, 153, 325, 561]  # [B] Table 6


@pytest.mark.symbolic
@pytest.mark.parametrize("layout", ["full", "compressed"])
def test_taylor_kernel_identity(layout):
    import sympy

    from mqarkit.polynomials import TaylorMap

    d = 3
    q, k = sympy.symbols(f"q0:{d}"), sympy.symbols(f"k0:{d}")
    for scale in (False, True):
        fmap = TaylorMap(d, layout=layout, scale=scale)
        fq, fk = fmap.apply(np.array(q, dtype=object)), fmap.apply(np.array(k, dtype=object))
        s = sum(a * b for a, b in zip(q, k))
        r = sympy.sqrt(d) if scale else 1
        assert sympy.expand(sum(a * b for a, b in zip(fq, fk)) - (1 + s / r + s**2 / (2 * r**2))) == 0


def test_bad_input_raises():
    with pytest.raises(ValueError, match="values"):
        build("based_taylor", vocab_size=20, seq_len=16, num_kv_pairs=2, values="dense")
    with pytest.raises(ValueError, match="unknown"):
        build("based_taylor", vocab_size=20, seq_len=16, num_kv_pairs=2, window=4)


@pytest.mark.slow
def test_large_n_onehot():
    spec = MQARSpec(1100, 1024, 128)
    batch = generate(spec, 1, np.random.default_rng(0))
    con = build("based_taylor", vocab_size=1100, seq_len=1024, num_kv_pairs=128)
    assert score(con.predict(batch.inputs), batch).accuracy == 1.0
