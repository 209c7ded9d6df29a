"""Data-independent BaseConv MQAR (U4): exhaustive at tiny sizes, property-tested, symbolic identity, resources."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from mqarkit.constructions import baseconv_data_independent as di
from mqarkit.constructions import build, claimed_resources
from mqarkit.constructions._baseconv_stack import reference_output
from mqarkit.polynomials import Model, SignCode, analyse, evaluate, output_degree
from mqarkit.strategies import instances
from mqarkit.task import MQARSpec, generate

NAME = "baseconv_data_independent"


def _all_clean_instances(c: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every clean one-pair instance (D = 1) of length N: (inputs (B, N), labels (B, N))."""
    spec = MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=1, filler="clean")
    rows, labels = [], []
    slots = list(spec.query_region)[::2]
    for k, v in itertools.product(spec.key_range, spec.value_range):
        filler = [t for t in range(c) if t not in (k, v)]
        for q in slots:
            free = [i for i in range(2, n) if i != q]
            for fill in itertools.product(filler, repeat=len(free)):
                x = np.zeros(n, dtype=np.int64)
                x[0], x[1], x[q] = k, v, k
                x[free] = fill
                lab = np.full(n, -100)
                lab[q] = v
                rows.append(x)
                labels.append(lab)
    return np.array(rows), np.array(labels)


@pytest.mark.parametrize("encoding", ["sign", "onehot"])
@pytest.mark.parametrize("c, n", [(5, 4), (8, 4), (7, 6), (8, 6)])
def test_exhaustive_tiny(encoding: str, c: int, n: int) -> None:
    inputs, labels = _all_clean_instances(c, n)
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=1, encoding=encoding)
    pred = con.predict(inputs)
    q = labels != -100
    assert q.sum() == len(inputs)
    assert np.array_equal(pred[q], labels[q])


@pytest.mark.parametrize("encoding", ["sign", "onehot"])
def test_exact_backend_agrees(encoding: str) -> None:
    batch = generate(MQARSpec(vocab_size=10, seq_len=8, num_kv_pairs=2, filler="random"), 3, np.random.default_rng(3))
    con = build(NAME, vocab_size=10, seq_len=8, num_kv_pairs=2, encoding=encoding)
    exact = con.output(batch.inputs, backend="exact")
    direct = np.stack([di.direct_output(x, 2, 10, encoding) for x in batch.inputs])
    assert all(exact[idx] == direct[idx] for idx in np.ndindex(direct.shape))
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs, backend="exact")[q], batch.labels[q])


@given(instances(max_seq_len=32, max_num_passes=1, max_num_examples=3), st.sampled_from(["sign", "onehot"]))
def test_property_all_fillers(inst: object, encoding: str) -> None:
    spec, batch = inst.spec, inst.batch  # type: ignore[attr-defined]
    con = build(
        NAME, vocab_size=spec.vocab_size, seq_len=spec.seq_len, num_kv_pairs=spec.num_kv_pairs, encoding=encoding
    )
    out = con.output(batch.inputs)
    direct = np.stack([di.direct_output(x, spec.num_kv_pairs, spec.vocab_size, encoding) for x in batch.inputs])
    assert np.array_equal(out, direct)
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


def test_loop_reference_matches_ir() -> None:
    batch = generate(MQARSpec(vocab_size=12, seq_len=10, num_kv_pairs=2), 1, np.random.default_rng(5))
    weights = di.sign_weights(10, 2, 12)
    ref = reference_output(weights, di.sign_codebook(12)[batch.inputs[0]])
    con = build(NAME, vocab_size=12, seq_len=10, num_kv_pairs=2)
    assert np.array_equal(ref.astype(np.int64), con.output(batch.inputs)[0])


def _symbolic_identity(c: int, n: int, d: int) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d)
    m = di.sign_width(c)
    code = np.array([[sp.Symbol(f"a_{i}_{k}") for k in range(m)] for i in range(n)], dtype=object)
    model: Model = con.model
    from mqarkit.polynomials import embed, read

    got = read(model, evaluate(model, embed(model, {"token": code}), backend="symbolic"), "out")
    want = di.intended_polynomial(code, d)
    for idx in np.ndindex(n, m):
        assert sp.expand(got[idx] - want[idx]) == 0, idx
    degrees = [sp.Poly(got[i, 0], *code.ravel()).total_degree() for i in range(n) if got[i, 0] != 0]
    assert degrees and max(degrees) == 2 * m + 1 == con.resources().claimed.degree
    assert max(degrees) <= 2 ** con.resources().measured.layers


@pytest.mark.symbolic
@pytest.mark.parametrize("c, n, d", [(5, 4, 1), (7, 6, 1), (9, 8, 2)])
def test_symbolic_identity(c: int, n: int, d: int) -> None:
    _symbolic_identity(c, n, d)


@pytest.mark.symbolic
@pytest.mark.slow
@pytest.mark.parametrize("c, n, d", [(11, 10, 2), (17, 12, 3)])
def test_symbolic_identity_larger(c: int, n: int, d: int) -> None:
    _symbolic_identity(c, n, d)


@pytest.mark.symbolic
def test_exact_output_degree_equals_claimed() -> None:
    con = build(NAME, vocab_size=5, seq_len=4, num_kv_pairs=1)
    deg = output_degree(con.model, 4, block="out")
    assert int(deg.max()) == con.resources().claimed.degree == 2 * 3 + 1


@pytest.mark.parametrize("encoding", ["sign", "onehot"])
@pytest.mark.parametrize("c, n, d", [(5, 4, 1), (9, 8, 2), (33, 32, 5), (65, 64, 3)])
def test_claimed_resources_equal_measured(encoding: str, c: int, n: int, d: int) -> None:
    if encoding == "onehot" and n > 32:
        pytest.skip("the dense one-hot model at N = 64 is large; covered by the smaller sizes")
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, encoding=encoding)
    report = con.resources()
    assert report.mismatches() == {}
    assert report.claimed == report.measured
    assert con.nonzero_parameters() == di.claimed_nonzero_parameters(n, d, c, encoding)


@pytest.mark.parametrize("c", [5, 9, 16, 17, 33, 200, 257, 1025])
def test_depth_against_l2(c: int) -> None:
    """Depth 1 + ceil(log2(m+1)) = ceil(log2(2m+1)): equal to L2's ceil(log2(2m)) unless m is a power of two."""
    n = 4
    m = SignCode(c).width
    r = claimed_resources(NAME, vocab_size=max(c, n + 1), seq_len=n, num_kv_pairs=1)
    assert r.layers == 1 + math.ceil(math.log2(m + 1)) == math.ceil(math.log2(2 * m + 1))
    l2 = math.ceil(math.log2(2 * m))
    power_of_two = m & (m - 1) == 0
    assert r.layers == l2 + (1 if power_of_two else 0)
    assert 2 ** (r.layers - 1) < r.degree <= 2**r.layers  # degree 2m + 1 forces this depth


def test_width_grows_linearly_with_n_and_log_c() -> None:
    widths = [claimed_resources(NAME, vocab_size=1025, seq_len=n, num_kv_pairs=1).width for n in (16, 32, 64, 128)]
    m = 11
    assert widths == [2 * m + 2 * m * (n // 2 - 1) for n in (16, 32, 64, 128)]
    nz = [di.claimed_nonzero_parameters(n, 1, 1025) for n in (64, 128, 256)]
    assert nz[2] - nz[1] == 2 * (nz[1] - nz[0])  # affine in N (D = 1): Θ(N log c) non-zero weights


def test_analysis_counts_only_baseconv_layers() -> None:
    con = build(NAME, vocab_size=9, seq_len=8, num_kv_pairs=2)
    a = analyse(con.model, 8)
    assert a.layers == 4 and a.degree_bound == 16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"encoding": "binary"}, "encoding='binary'"),
        ({"depth": 3}, "unknown"),
        ({"seq_len": 7}, "seq_len"),
        ({"num_kv_pairs": 3}, "num_kv_pairs"),
        ({"vocab_size": 8}, "vocab_size"),
    ],
)
def test_bad_sizes_and_knobs_raise(kwargs: dict, message: str) -> None:
    sizes = {"vocab_size": 9, "seq_len": 8, "num_kv_pairs": 2}
    knobs = {k: v for k, v in kwargs.items() if k not in sizes}
    sizes.update({k: v for k, v in kwargs.items() if k in sizes})
    with pytest.raises(ValueError, match=message):
        build(NAME, **sizes, **knobs)
    with pytest.raises(ValueError, match=message):
        claimed_resources(NAME, **sizes, **knobs)


def test_symbolic_predict_is_refused() -> None:
    con = build(NAME, vocab_size=9, seq_len=8, num_kv_pairs=2)
    with pytest.raises(ValueError, match="backend='symbolic'"):
        con.predict(np.zeros((1, 8), dtype=np.int64), backend="symbolic")


@pytest.mark.slow
@pytest.mark.parametrize("n, d", [(256, 16), (512, 8)])
def test_large_float64(n: int, d: int) -> None:
    c = n + 1
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d)
    for filler in ("zero", "clean"):
        batch = generate(MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d, filler=filler), 2, np.random.default_rng(n))
        q = batch.labels != -100
        assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


# --------------------------------------------------------------------------------------------------------------------
# one shared gate: O~(N log c) non-zeros for every D


@pytest.mark.parametrize("c, n", [(5, 4), (8, 4), (7, 6), (8, 6)])
def test_shared_gate_exhaustive_tiny(c: int, n: int) -> None:
    inputs, labels = _all_clean_instances(c, n)
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=1, gate="shared")
    q = labels != -100
    assert np.array_equal(con.predict(inputs)[q], labels[q])


@pytest.mark.parametrize("c, n, d", [(10, 8, 2), (18, 16, 3)])
def test_shared_gate_exact_output_equals_its_direct_form_and_per_lag_at_queries(c: int, n: int, d: int) -> None:
    batch = generate(MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d, filler="random"), 3, np.random.default_rng(9))
    shared = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, gate="shared")
    per_lag = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d)
    exact = shared.output(batch.inputs, backend="exact")
    direct = np.stack([di.direct_output(x, d, c, "sign", "shared") for x in batch.inputs])
    assert (exact == direct).all()
    q = batch.labels != -100  # at every query slot the two gates compute the same (**)
    assert (exact[q] == per_lag.output(batch.inputs, backend="exact")[q]).all()


@pytest.mark.parametrize("c, n, d", [(9, 8, 2), (17, 16, 4), (33, 32, 8), (130, 64, 16)])
def test_shared_gate_claimed_resources_equal_measured(c: int, n: int, d: int) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d, gate="shared")
    assert con.resources().mismatches() == {}
    assert con.nonzero_parameters() == di.claimed_nonzero_parameters(n, d, c, "sign", "shared")


def test_shared_gate_nonzeros_do_not_grow_with_d() -> None:
    shared = [di.claimed_nonzero_parameters(256, d, 1025, "sign", "shared") for d in (4, 16, 64)]
    per_lag = [di.claimed_nonzero_parameters(256, d, 1025, "sign", "per_lag") for d in (4, 16, 64)]
    m = 11
    assert shared[2] - shared[0] == m * (64 - 4)  # only the shared flags: m per value slot
    assert per_lag[2] - per_lag[0] > 50 * (shared[2] - shared[0])  # the per-lag gates: m D (N - 2D) / 2


def test_shared_gate_needs_sign_codes() -> None:
    with pytest.raises(ValueError, match="gate='shared': needs encoding='sign'"):
        build(NAME, vocab_size=9, seq_len=8, num_kv_pairs=2, gate="shared", encoding="onehot")
    with pytest.raises(ValueError, match="gate='global'"):
        build(NAME, vocab_size=9, seq_len=8, num_kv_pairs=2, gate="global")
