"""U10 (delta_rule): the storage lemma over Q, exact MQAR recall, resources, knobs; the DeltaRule op's three rungs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given

from mqarkit.constructions import build
from mqarkit.oracle import expected_answers, score
from mqarkit.polynomials import DeltaRule, evaluate
from mqarkit.proofs_checks.delta_storage import rational_orthogonal, run_writes
from mqarkit.strategies import instances
from mqarkit.tolerances import assert_close


@given(instances(max_seq_len=32, fillers=("zero", "clean")))
def test_recalls_every_query_of_clean_instances(inst) -> None:
    s, b = inst.spec, inst.batch
    con = build("delta_rule", vocab_size=s.vocab_size, seq_len=s.seq_len, num_kv_pairs=s.num_kv_pairs)
    assert score(con.predict(b.inputs), b).accuracy == 1.0


def test_exact_backend_reads_the_value_code_times_the_write_strength() -> None:
    """lookup[t] == (1 - (1 - beta)^P) a(v) over Q, at every query (P = 2 passes)."""
    from mqarkit.task import MQARSpec, generate

    spec = MQARSpec(vocab_size=30, seq_len=24, num_kv_pairs=3, filler="clean", num_passes=2)
    batch = generate(spec, 2, np.random.default_rng(5))
    beta = Fraction(1, 3)
    con = build("delta_rule", vocab_size=30, seq_len=24, num_kv_pairs=3, beta=beta)
    from mqarkit.constructions._attention_ir import lookup_block_exact

    out = lookup_block_exact(con.model, batch.inputs, np.eye(30, dtype=np.int64))
    answers = expected_answers(batch)
    gain = 1 - (1 - beta) ** 2
    for e, t in zip(*np.nonzero(answers >= 0)):
        want = [gain * int(a) for a in con.value_codebook()[answers[e, t]]]
        assert list(out[e, t]) == want


def test_resources_claimed_equal_measured() -> None:
    con = build("delta_rule", vocab_size=40, seq_len=32, num_kv_pairs=4)
    report = con.resources()
    assert report.mismatches() == {}
    m = con.code_width
    assert report.claimed.state_numbers == 40 + 40 * m and report.claimed.width == 80 + m


def test_value_codes_are_balanced_zero_one() -> None:
    con = build("delta_rule", vocab_size=70, seq_len=16, num_kv_pairs=2)
    a = con.value_codebook()
    assert set(np.unique(a).tolist()) == {0, 1} and (a.sum(1) == con.code_width // 2).all()
    assert (con.readout_codebook() == 2 * a - 1).all()


@pytest.mark.parametrize(("knobs", "message"), [({"beta": 0}, "beta=0"), ({"beta": 1.5}, "beta=1.5"), ({"x": 1}, "x")])
def test_bad_knobs_raise(knobs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build("delta_rule", vocab_size=16, seq_len=8, num_kv_pairs=2, **knobs)


def test_storage_lemma_over_q_with_dense_orthonormal_keys() -> None:
    rng = np.random.default_rng(0)
    keys = rational_orthogonal(5, rng)[:4]
    assert (keys @ keys.T == np.eye(4, dtype=np.int64)).all()
    order = np.array([0, 1, 2, 3, 1, 0])
    values = np.vectorize(Fraction, otypes=[object])(rng.integers(-3, 4, size=(6, 2)))
    got = run_writes(keys, values, order)
    want = values[[5, 4, 2, 3]]
    assert (got == want).all()


def test_op_backends_agree_and_it_is_the_recurrence() -> None:
    rng = np.random.default_rng(1)
    op = DeltaRule(
        wq=rng.integers(-2, 3, (5, 3)),
        wk=rng.integers(-2, 3, (5, 3)),
        wv=rng.integers(-2, 3, (5, 2)),
        beta=Fraction(1, 2),
    )
    x = rng.integers(-1, 2, size=(2, 4, 5))
    exact = np.asarray(evaluate(op, x, backend="exact"), dtype=np.float64)
    assert_close(evaluate(op, x.astype(np.float64), backend="float64"), exact, dtype="float64")
    # the recurrence written out once more, for one example
    q, k, v = x[0] @ op.wq, x[0] @ op.wk, x[0] @ op.wv
    S = np.zeros((3, 2), dtype=object)
    for i in range(4):
        S = S + Fraction(1, 2) * np.outer(k[i], v[i] - k[i] @ S)
        assert list(exact[0, i]) == [float(y) for y in q[i] @ S]
    assert op.state_numbers(4) == 6 and op.degree(1) is None


def test_op_rejects_bad_beta() -> None:
    z = np.zeros((2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="beta"):
        DeltaRule(wq=z, wk=z, wv=z, beta=2)
