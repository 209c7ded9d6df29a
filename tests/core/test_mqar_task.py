"""MQARSpec validation and the properties of `generate` over hypothesis-drawn specs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given

from mqarkit.strategies import Instance, instances, specs
from mqarkit.task import IGNORE_INDEX, MQARSpec, generate

BASE = {"vocab_size": 64, "seq_len": 32, "num_kv_pairs": 4}


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"vocab_size": True}, "vocab_size", "not a bool"),
        ({"seq_len": 32.0}, "seq_len", "must be an int"),
        ({"num_kv_pairs": 0}, "num_kv_pairs", ">= 1"),
        ({"num_passes": 0}, "num_passes", ">= 1"),
        ({"seq_len": -2}, "seq_len", ">= 1"),
        ({"seq_len": 31}, "seq_len", "even"),
        ({"num_kv_pairs": 9}, "num_kv_pairs", r"2\*num_kv_pairs\*\(num_passes\+1\) <= seq_len"),
        ({"num_kv_pairs": 4, "num_passes": 4}, "num_kv_pairs", r"40 <= 32"),
        ({"vocab_size": 5, "seq_len": 8, "num_kv_pairs": 2}, "vocab_size", "distinct key tokens"),
        ({"vocab_size": 32}, "vocab_size", "vocab_size > seq_len"),
        ({"power_a": 0.0}, "power_a", "> 0"),
        ({"power_a": float("inf")}, "power_a", "finite"),
        ({"power_a": "0.5"}, "power_a", "real number"),
        ({"power_a": True}, "power_a", "real number"),
        ({"filler": "ones"}, "filler", "one of"),
    ],
)
def test_spec_validation_names_the_field(overrides: dict, field: str, rule: str) -> None:
    kwargs = {**BASE, **overrides}
    with pytest.raises(ValueError, match=rule) as info:
        MQARSpec(**kwargs)
    assert str(info.value).startswith(f"{field}=")


def test_spec_passes_fit_rule_boundary() -> None:
    # 2 D (P + 1) <= N: D = 4, P = 3 needs N >= 32 exactly.
    assert MQARSpec(vocab_size=64, seq_len=32, num_kv_pairs=4, num_passes=3).num_query_slots == 4
    with pytest.raises(ValueError, match="num_kv_pairs=4"):
        MQARSpec(vocab_size=64, seq_len=30, num_kv_pairs=4, num_passes=3)


def test_spec_normalises_numpy_ints_and_int_power() -> None:
    spec = MQARSpec(vocab_size=np.int64(64), seq_len=np.int32(32), num_kv_pairs=4, power_a=1)
    assert type(spec.vocab_size) is int and type(spec.seq_len) is int and type(spec.power_a) is float


@given(specs(max_seq_len=64, max_extra_vocab=3, max_num_passes=3))
def test_spec_implied_rules_hold(spec: MQARSpec) -> None:
    # Rules 4/5 of MQARSpec imply enough values and enough clean filler tokens; checked here on drawn specs.
    assert len(spec.value_range) >= spec.num_kv_pairs
    assert spec.num_clean_filler_tokens >= 2
    assert spec.num_query_slots >= spec.num_kv_pairs
    assert spec.context_len + 2 * spec.num_query_slots == spec.seq_len


def test_spec_derived_ranges() -> None:
    spec = MQARSpec(vocab_size=65, seq_len=40, num_kv_pairs=3, num_passes=2)
    assert spec.key_range == range(1, 32) and spec.value_range == range(32, 65)
    assert (spec.kv_block_len, spec.context_len, spec.num_query_slots) == (6, 12, 14)
    assert spec.query_region == range(12, 40)
    assert spec.num_clean_filler_tokens == 59


def test_gap_probabilities_follow_the_power_law() -> None:
    spec = MQARSpec(vocab_size=128, seq_len=64, num_kv_pairs=4, power_a=0.25)
    p = spec.gap_probabilities()
    g = np.arange(1, spec.num_query_slots + 1)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p / p[0], g ** (0.25 - 1.0), rtol=1e-12)


def test_generate_rejects_bad_arguments() -> None:
    spec = MQARSpec(**BASE)
    with pytest.raises(TypeError, match="rng"):
        generate(spec, 2, np.random.RandomState(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rng"):
        generate(spec, 2, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_examples=0"):
        generate(spec, 0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="num_examples"):
        generate(spec, True, np.random.default_rng(0))
    with pytest.raises(TypeError, match="spec"):
        generate(BASE, 1, np.random.default_rng(0))  # type: ignore[arg-type]


def test_generate_is_reproducible_from_the_generator() -> None:
    spec = MQARSpec(vocab_size=97, seq_len=48, num_kv_pairs=5, filler="clean", num_passes=2)
    a, b = generate(spec, 6, np.random.default_rng(5)), generate(spec, 6, np.random.default_rng(5))
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)
    c = generate(spec, 6, np.random.default_rng(6))
    assert not np.array_equal(a.inputs, c.inputs)


@given(instances(max_seq_len=48, max_num_passes=3, max_num_examples=5))
def test_generated_batches_have_the_documented_layout(inst: Instance) -> None:
    spec, batch = inst.spec, inst.batch
    n, N, D, P = batch.num_examples, spec.seq_len, spec.num_kv_pairs, spec.num_passes
    for name in ("inputs", "labels", "keys", "values", "key_positions", "value_positions", "query_positions"):
        assert getattr(batch, name).dtype == np.int64
    assert batch.inputs.shape == batch.labels.shape == (n, N)
    # keys and values: distinct per example, in their ranges
    for arr, rng_ in ((batch.keys, spec.key_range), (batch.values, spec.value_range)):
        assert ((arr >= rng_.start) & (arr < rng_.stop)).all()
        s = np.sort(arr, axis=1)
        assert (s[:, 1:] != s[:, :-1]).all()
    # every pass is the interleaved key-value block
    for p in range(P):
        assert np.array_equal(batch.inputs[:, 2 * D * p : 2 * D * (p + 1) : 2], batch.keys)
        assert np.array_equal(batch.inputs[:, 2 * D * p + 1 : 2 * D * (p + 1) : 2], batch.values)
    assert np.array_equal(batch.key_positions[0], 2 * D * (P - 1) + 2 * np.arange(D))
    assert np.array_equal(batch.value_positions, batch.key_positions + 1)
    # each key is queried exactly once, at a distinct even offset of the query region
    q = batch.query_positions
    assert ((q >= spec.context_len) & (q < N) & ((q - spec.context_len) % 2 == 0)).all()
    assert (np.sort(q, axis=1)[:, 1:] != np.sort(q, axis=1)[:, :-1]).all()
    assert np.array_equal(np.take_along_axis(batch.inputs, q, axis=1), batch.keys)
    # labels only at the queries, equal to the paired value
    is_query = np.zeros((n, N), dtype=bool)
    np.put_along_axis(is_query, q, True, axis=1)
    assert (batch.labels[~is_query] == IGNORE_INDEX).all()
    assert np.array_equal(np.take_along_axis(batch.labels, q, axis=1), batch.values)
    # key occurrences: once per pass, plus once as a query (for zero/clean filler the query region has no other copy)
    region = batch.inputs[:, spec.context_len :]
    region_filler = region[~is_query[:, spec.context_len :]].reshape(n, -1)
    if spec.filler == "zero":
        assert (region_filler == 0).all()
    elif spec.filler == "clean":
        banned = np.concatenate([batch.keys, batch.values], axis=1)
        assert not (region_filler[:, :, None] == banned[:, None, :]).any()
    else:
        assert ((region_filler >= 0) & (region_filler < spec.vocab_size)).all()
    if spec.filler != "random":
        counts = (batch.inputs[:, :, None] == batch.keys[:, None, :]).sum(axis=1)  # (n, D)
        assert (counts == P + 1).all()


def test_multi_pass_layout_example() -> None:
    spec = MQARSpec(vocab_size=200, seq_len=64, num_kv_pairs=5, num_passes=3, filler="clean")
    batch = generate(spec, 50, np.random.default_rng(2))
    block = batch.inputs[:, :10]
    assert np.array_equal(batch.inputs[:, 10:20], block) and np.array_equal(batch.inputs[:, 20:30], block)
    assert (batch.query_positions >= 30).all()
    assert np.array_equal(batch.key_positions[0], np.array([20, 22, 24, 26, 28]))


def test_query_slots_follow_successive_sampling_from_the_gap_law() -> None:
    # N=16, D=2, one pass: S = 6 slots; the law of (slot of key 0, slot of key 1) is successive sampling from p(g).
    spec = MQARSpec(vocab_size=64, seq_len=16, num_kv_pairs=2, power_a=0.5)
    batch = generate(spec, 60_000, np.random.default_rng(9))
    slots = (batch.query_positions - spec.context_len) // 2
    w = [g**-0.5 for g in range(1, 7)]  # a g^(a-1) up to the factor a, a = 1/2
    total = sum(w)
    law = {(i, j): w[i] / total * w[j] / (total - w[i]) for i, j in itertools.permutations(range(6), 2)}
    outcomes, counts = np.unique(slots, axis=0, return_counts=True)
    observed = {tuple(int(v) for v in o): int(c) for o, c in zip(outcomes, counts)}
    assert set(observed) <= set(law)
    chi2 = sum((observed.get(o, 0) - 60_000 * p) ** 2 / (60_000 * p) for o, p in law.items())
    assert chi2 < 59.7  # upper 0.1% quantile of chi-square with 29 degrees of freedom
