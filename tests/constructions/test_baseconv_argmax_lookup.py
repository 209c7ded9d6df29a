"""The argmax-readout BaseConv (X1): sharpening polynomials by hand, the exact solve condition (sufficient on random
instances, necessary on the worst instance), the exact backend against the direct form, resources, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

from mqarkit.constructions import baseconv_argmax_lookup as al
from mqarkit.constructions import build, claimed_resources
from mqarkit.constructions._baseconv_sign_lookup import sign_codebook
from mqarkit.constructions._baseconv_stack import argmax_predict, as_ir_model, run_ir_model
from mqarkit.strategies import instances
from mqarkit.task import MQARSpec, generate

NAME = "baseconv_argmax_lookup"


def test_sharpening_by_hand() -> None:
    assert al.roots(4, 2) == (1, 2)  # scores {2, 0, -2}: r^2 = (0 + 4)/2 -> 1; then {3, -1}: r^2 = (1 + 9)/2 -> 2
    assert [al.sharpen(s, 4, 1) for s in (4, 2, 0, -2)] == [15, 3, -1, 3]
    assert al.sharpen(4, 4, 2) == 15 * 15 - 4 and al.sharpen(2, 4, 0) == 2


def test_worst_interference_by_hand() -> None:
    # m = 4, one level: |Q| = 3 at h = 1 (C(3,1) = 3 keys) and h = 3 (1 key), 1 at h = 2 (3 keys, one of them token 0)
    assert al.worst_interference(16, 2, 1) == 3 and al.worst_interference(16, 5, 1) == 12
    assert al.worst_interference(16, 6, 1) == 13 and al.worst_interference(16, 1, 1) == 0
    with pytest.raises(ValueError, match="more keys"):
        al.worst_interference(16, 9, 1)  # only 7 keys in [1, 8)


@pytest.mark.parametrize("m", [3, 4, 5, 8, 13, 16, 17])
def test_depth_one_and_two(m: int) -> None:
    c = 2**m
    assert al.argmax_depth(c, 1) == 1
    assert al.argmax_depth(c, 2) == 2  # the inner product alone: |sigma| <= m - 2 < m
    assert al.argmax_depth(c, 2) < math.ceil(math.log2(2 * m))  # L2 asks for 3 or more


def test_depth_at_m13_is_below_l2_for_small_d() -> None:
    assert [al.argmax_depth(8192, d) for d in (3, 4, 5, 6)] == [4, 4, 4, 5]
    assert math.ceil(math.log2(2 * 13)) == 5


@given(instances(max_seq_len=16, max_num_passes=1, max_num_examples=3, fillers=("zero", "clean", "random")))
def test_solves_every_instance_at_its_depth(inst: object) -> None:
    spec, batch = inst.spec, inst.batch  # type: ignore[attr-defined]
    if al.argmax_depth(spec.vocab_size, spec.num_kv_pairs) is None:
        pytest.skip("no sharpened depth separates these keys (the exact-output construction applies)")
    con = build(NAME, vocab_size=spec.vocab_size, seq_len=spec.seq_len, num_kv_pairs=spec.num_kv_pairs)
    q = batch.labels != -100
    assert np.array_equal(con.predict(batch.inputs)[q], batch.labels[q])


@pytest.mark.parametrize("c, n, d", [(16, 8, 2), (32, 16, 3), (64, 16, 4), (256, 16, 3)])
def test_the_condition_is_necessary_one_depth_below(c: int, n: int, d: int) -> None:
    depth = al.argmax_depth(c, d)
    tokens, pos, answer = al.worst_instance(c, n, d, depth)
    assert build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d).predict(tokens[None])[0, pos] == answer
    if depth >= 3:
        tokens, pos, answer = al.worst_instance(c, n, d, depth - 1)
        model = as_ir_model(al.argmax_weights(n, d, c, depth - 1))
        out = run_ir_model(model, sign_codebook(c)[tokens[None]], "float64")
        assert argmax_predict(out, sign_codebook(c), "float64")[0, pos] != answer


@pytest.mark.parametrize("c, n, d", [(16, 8, 1), (16, 8, 2), (32, 8, 2), (64, 16, 4)])
def test_exact_output_equals_direct_form_and_resources(c: int, n: int, d: int) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d)
    batch = generate(MQARSpec(c, n, d, filler="random"), 2, np.random.default_rng(c + d))
    exact = con.output(batch.inputs, backend="exact")
    direct = np.stack([al.direct_output(x, d, c, con.depth) for x in batch.inputs])
    assert (exact == direct).all()
    assert con.resources().mismatches() == {}
    assert con.resources().measured.degree == (1 if con.depth == 1 else 2 ** (con.depth - 1) + 1)


@pytest.mark.parametrize(
    "knobs, message",
    [({"depth": 0}, "depth=0"), ({"depth": 1}, "depth=1: the argmax lookup does not solve"),
     ({"levels": 2}, "unknown")],
)  # fmt: skip
def test_bad_knobs_raise(knobs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(NAME, vocab_size=16, seq_len=8, num_kv_pairs=2, **knobs)
    with pytest.raises(ValueError, match=message):
        claimed_resources(NAME, vocab_size=16, seq_len=8, num_kv_pairs=2, **knobs)


def test_a_depth_below_the_condition_builds_only_outside_the_claimed_range() -> None:
    low = build(NAME, vocab_size=16, seq_len=8, num_kv_pairs=2, depth=1, outside_claimed_range=True)
    assert not low.within_claimed_range and low.resources().measured.layers == 1
    tokens = np.array([[3, 9, 5, 12, 3, 0, 5, 0]])  # two keys: one layer cannot tell them apart
    assert (low.predict(tokens)[0, [4, 6]] != [9, 12]).any()


def test_too_many_keys_for_every_depth_raise() -> None:
    assert al.argmax_depth(2**17, 1024) is None
    with pytest.raises(ValueError, match="no depth <= 6"):
        claimed_resources(NAME, vocab_size=2**17, seq_len=4096, num_kv_pairs=1024)
