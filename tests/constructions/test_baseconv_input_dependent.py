"""Input-dependent BaseConv MQAR (U3): exact lags, erratum 7 (autocorrelation misses a lag), resources, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from mqarkit.constructions import baseconv_input_dependent as bid
from mqarkit.constructions import build, claimed_resources
from mqarkit.constructions._baseconv_layout import autocorrelation, needed_lags, top_autocorrelation_lags
from mqarkit.constructions._baseconv_onehot_lookup import onehot_lookup_direct, onehot_lookup_weights
from mqarkit.constructions._baseconv_stack import reference_output
from mqarkit.strategies import instances
from mqarkit.task import MQARSpec, generate

NAME = "baseconv_input_dependent"


@given(instances(max_seq_len=32, max_num_passes=1, max_num_examples=3, fillers=("zero", "clean")))
def test_exact_lags_solve_clean_instances(inst: object) -> None:
    spec, batch = inst.spec, inst.batch  # type: ignore[attr-defined]
    con = build(NAME, vocab_size=spec.vocab_size, seq_len=spec.seq_len, num_kv_pairs=spec.num_kv_pairs)
    out = con.output(batch.inputs)
    for x, o in zip(batch.inputs, out):
        assert np.array_equal(o, onehot_lookup_direct(x, spec.num_kv_pairs, spec.vocab_size, con.lags_for(x)))
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


def test_random_filler_with_enough_lag_groups() -> None:
    spec = MQARSpec(vocab_size=20, seq_len=16, num_kv_pairs=3, filler="random")
    batch = generate(spec, 8, np.random.default_rng(0))
    con = build(NAME, vocab_size=20, seq_len=16, num_kv_pairs=3, t=spec.num_query_slots)
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


def test_exact_backend_and_loop_reference() -> None:
    batch = generate(MQARSpec(vocab_size=10, seq_len=8, num_kv_pairs=2), 2, np.random.default_rng(1))
    con = build(NAME, vocab_size=10, seq_len=8, num_kv_pairs=2)
    exact = con.output(batch.inputs, backend="exact")
    for x, o in zip(batch.inputs, exact):
        ref = reference_output(onehot_lookup_weights(8, 2, 10, con.lags_for(x)), np.eye(10, dtype=np.int64)[x])
        assert all(o[idx] == ref[idx] for idx in np.ndindex(ref.shape))
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs, backend="exact")[q], batch.labels[q])


def _erratum7_instance() -> tuple[np.ndarray, int, int]:
    """Keys 1, 2 with values 9, 10; key 2 queried at 4 (lag 2), key 1 at 14 (lag 14); zero filler."""
    x = np.zeros(16, dtype=np.int64)
    x[:4] = [1, 9, 2, 10]
    x[4], x[14] = 2, 1
    return x, 14, 9


def test_erratum7_autocorrelation_misses_a_needed_lag() -> None:
    x, query, value = _erratum7_instance()
    assert needed_lags(x, 2) == [2, 14]
    chosen = top_autocorrelation_lags(x, 17, 2)
    assert 14 not in chosen  # filler-filler matches make small lags the peaks
    assert autocorrelation(x, 17)[14] < min(autocorrelation(x, 17)[s] for s in chosen)
    auto = build(NAME, vocab_size=17, seq_len=16, num_kv_pairs=2, lags="autocorrelation", t=2)
    exact = build(NAME, vocab_size=17, seq_len=16, num_kv_pairs=2, lags="exact", t=2)
    assert auto.predict(x[None])[0, query] != value  # the construction fails on this instance
    assert exact.predict(x[None])[0, query] == value
    assert exact.predict(x[None])[0, 4] == 10


def test_autocorrelation_with_all_lags_is_exact() -> None:
    spec = MQARSpec(vocab_size=20, seq_len=16, num_kv_pairs=3)
    batch = generate(spec, 4, np.random.default_rng(2))
    con = build(NAME, vocab_size=20, seq_len=16, num_kv_pairs=3, lags="autocorrelation", t=15)
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


@pytest.mark.parametrize("c, n, d, t", [(10, 8, 2, 2), (20, 16, 3, 5), (65, 64, 8, 8)])
def test_claimed_resources_equal_measured(c: int, n: int, d: int, t: int) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, t=t)
    report = con.resources()
    assert report.mismatches() == {} and report.claimed == report.measured
    assert report.claimed.parameters == 2 * c * (2 * t * c) + 2 * (2 * t * c) ** 2 + 2 * n * (2 * t * c) + 2 * t * c
    x = generate(MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d), 1, np.random.default_rng(0)).inputs[0]
    lags = con.lags_for(x)
    assert len(lags) == t
    from mqarkit.constructions._baseconv_layout import lag_gate

    support = sum(int(np.count_nonzero(lag_gate(n, d, s))) for s in lags)
    assert con.nonzero_parameters(x) == t * (c * c + 7 * c) + c * support
    assert claimed_resources(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, t=t) == report.claimed


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"lags": "random"}, "lags='random'"),
        ({"t": 1}, "t=1"),
        ({"t": 8}, "t=8"),
        ({"window": 3}, "unknown"),
    ],
)
def test_bad_knobs_raise(knobs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(NAME, vocab_size=10, seq_len=8, num_kv_pairs=2, **knobs)


def test_too_many_needed_lags_raise() -> None:
    x = np.array([1, 5, 2, 6, 2, 0, 1, 0])
    con = build(NAME, vocab_size=10, seq_len=8, num_kv_pairs=2)
    assert bid.choose_lags(x, num_kv_pairs=2, vocab_size=10, rule="exact", t=2) == [2, 6]
    x_bad = np.array([1, 5, 2, 6, 2, 0, 1, 0])
    x_bad[6] = 1
    with pytest.raises(ValueError, match="t=1"):
        bid.pad_lags(needed_lags(x_bad, 2), 1, 8)
    assert con.predict(x[None])[0, 4] == 6


@pytest.mark.slow
def test_large_float64() -> None:
    spec = MQARSpec(vocab_size=513, seq_len=512, num_kv_pairs=4)
    batch = generate(spec, 2, np.random.default_rng(7))
    con = build(NAME, vocab_size=513, seq_len=512, num_kv_pairs=4)
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


# --------------------------------------------------------------------------------------------------------------------
# the variants that meet U3's size: factored broadcast (one-hot, 3 layers) and sign codes


@pytest.mark.parametrize("knobs", [{"broadcast": "factored"}, {"encoding": "sign"}])
@given(instances(max_seq_len=24, max_num_passes=1, max_num_examples=3, fillers=("zero", "clean")))
def test_variants_solve_clean_instances(knobs: dict, inst: object) -> None:
    spec, batch = inst.spec, inst.batch  # type: ignore[attr-defined]
    con = build(NAME, vocab_size=spec.vocab_size, seq_len=spec.seq_len, num_kv_pairs=spec.num_kv_pairs, **knobs)
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


def test_factored_broadcast_computes_the_same_lookup_exactly() -> None:
    batch = generate(MQARSpec(vocab_size=10, seq_len=8, num_kv_pairs=2), 3, np.random.default_rng(5))
    dense = build(NAME, vocab_size=10, seq_len=8, num_kv_pairs=2)
    factored = build(NAME, vocab_size=10, seq_len=8, num_kv_pairs=2, broadcast="factored")
    assert (factored.output(batch.inputs, backend="exact") == dense.output(batch.inputs, backend="exact")).all()
    assert factored.resources().measured.layers == 3 and dense.resources().measured.layers == 2


@pytest.mark.parametrize("knobs", [{}, {"broadcast": "factored"}, {"encoding": "sign"}])
@pytest.mark.parametrize("c, n, d", [(18, 16, 2), (34, 16, 4), (66, 32, 4)])
def test_nonzero_formulas_equal_the_built_models(knobs: dict, c: int, n: int, d: int) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, **knobs)
    cls = type(con)
    worst = cls.max_nonzero_parameters(vocab_size=c, seq_len=n, num_kv_pairs=d, **knobs)
    for x in generate(MQARSpec(c, n, d, filler="clean"), 3, np.random.default_rng(c + n)).inputs:
        formula = cls.nonzero_parameters_for(con.lags_for(x), vocab_size=c, seq_len=n, num_kv_pairs=d, **knobs)
        assert con.nonzero_parameters(x) == formula <= worst
    assert con.resources().mismatches() == {}


def test_factored_nonzeros_are_linear_in_c_and_the_dense_broadcast_quadratic() -> None:
    def nonzeros(c: int, knobs: dict) -> int:
        return bid.BaseConvInputDependent.max_nonzero_parameters(vocab_size=c, seq_len=16, num_kv_pairs=2, **knobs)

    factored = [nonzeros(c, {"broadcast": "factored"}) for c in (64, 128, 256)]
    dense = [nonzeros(c, {}) for c in (64, 128, 256)]
    assert factored[2] - factored[1] == 2 * (factored[1] - factored[0])  # affine in c
    assert dense[2] - dense[1] != 2 * (dense[1] - dense[0])  # the c^2 of the all-ones broadcast
    assert factored[0] <= 4 * 2 * 16 * 64 < dense[0]  # 4 t N c against t (c^2 + ...)


@pytest.mark.parametrize(
    "knobs, message",
    [({"encoding": "binary"}, "encoding='binary'"), ({"broadcast": "sparse"}, "broadcast='sparse'"),
     ({"encoding": "sign", "broadcast": "factored"}, "only the one-hot lookup")],
)  # fmt: skip
def test_bad_variant_knobs_raise(knobs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(NAME, vocab_size=10, seq_len=8, num_kv_pairs=2, **knobs)
