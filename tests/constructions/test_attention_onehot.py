"""U1 (attention_onehot): exact recall on clean instances, both backends, resources, erratum 2, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from mqarkit.constructions import build
from mqarkit.constructions.attention_onehot import onehot_lookup_reference
from mqarkit.oracle import expected_answers, score
from mqarkit.strategies import instances
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close


@given(instances(max_seq_len=48, fillers=("zero", "clean")))
def test_solves_every_clean_instance(inst):
    s = inst.spec
    con = build("attention_onehot", vocab_size=s.vocab_size, seq_len=s.seq_len, num_kv_pairs=s.num_kv_pairs)
    assert score(con.predict(inst.batch.inputs), inst.batch).accuracy == 1.0
    # the IR lookup equals the direct reference (token comparisons, no weights)
    assert_close(con.lookup(inst.batch.inputs), onehot_lookup_reference(inst.batch.inputs, s.vocab_size))


def test_exact_backend_is_exact_and_agrees():
    spec = MQARSpec(20, 16, 3, filler="clean")
    batch = generate(spec, 2, np.random.default_rng(3))
    con = build("attention_onehot", vocab_size=20, seq_len=16, num_kv_pairs=3)
    assert (con.predict(batch.inputs, "exact") == con.predict(batch.inputs)).all()
    assert score(con.predict(batch.inputs, "exact"), batch).accuracy == 1.0


@pytest.mark.parametrize("c,N,D", [(5, 4, 1), (17, 16, 4), (65, 64, 16), (300, 256, 3)])
def test_claimed_resources_equal_measured(c, N, D):
    con = build("attention_onehot", vocab_size=c, seq_len=N, num_kv_pairs=D)
    report = con.resources()
    assert report.mismatches() == {}
    assert report.measured.parameters == 6 * c * c + 2 * c  # O(c^2), independent of N


def test_erratum2_causal_mask_fails_where_strict_succeeds():
    spec = MQARSpec(40, 32, 4, filler="clean")
    batch = generate(spec, 1, np.random.default_rng(0))
    t = int(batch.query_positions[0].max())
    x = batch.inputs.copy()
    x[0, t - 1] = x[0, t]  # the filler right before the query equals its key: the query's own pair matches
    expected = expected_answers(batch)[0, t]
    strict = build("attention_onehot", vocab_size=40, seq_len=32, num_kv_pairs=4)
    causal = build("attention_onehot", vocab_size=40, seq_len=32, num_kv_pairs=4, mask="causal")
    assert strict.predict(x)[0, t] == expected
    out = causal.lookup(x)[0, t]
    assert out[expected] == out[x[0, t]] == 1  # a tie between the value and the key: margin 0
    assert causal.predict(x)[0, t] == x[0, t] != expected


def test_bad_input_raises():
    with pytest.raises(ValueError, match="mask"):
        build("attention_onehot", vocab_size=20, seq_len=16, num_kv_pairs=2, mask="none")
    with pytest.raises(ValueError, match="unknown"):
        build("attention_onehot", vocab_size=20, seq_len=16, num_kv_pairs=2, beta=3.0)
    with pytest.raises(ValueError, match="num_kv_pairs"):
        build("attention_onehot", vocab_size=20, seq_len=16, num_kv_pairs=5)


@pytest.mark.symbolic
def test_score_identity_is_the_token_indicator():
    """``q_t . k_s = <token_t, prev_token_s>`` exactly, so on one-hot codes it is ``[x_t = x_{s-1}]``."""
    import sympy

    c = 4
    attn = build("attention_onehot", vocab_size=c, seq_len=4, num_kv_pairs=1).model.layers[1].op
    a, b = sympy.symbols(f"a0:{c}"), sympy.symbols(f"b0:{c}")  # a = token_t block, b = prev_token_s block
    q = np.array([*a, *[0] * c], dtype=object) @ attn.wq
    k = np.array([*[0] * c, *b], dtype=object) @ attn.wk
    assert sympy.expand(q @ k - sum(a[i] * b[i] for i in range(c))) == 0
    v = np.array([*a, *b], dtype=object) @ attn.wv
    assert list(v) == list(a)  # the value is the current token's code


@pytest.mark.slow
def test_large_n():
    spec = MQARSpec(1100, 1024, 64, filler="clean")
    batch = generate(spec, 1, np.random.default_rng(1))
    con = build("attention_onehot", vocab_size=1100, seq_len=1024, num_kv_pairs=64)
    assert score(con.predict(batch.inputs), batch).accuracy == 1.0
