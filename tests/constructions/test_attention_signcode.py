"""U2 (attention_signcode): recall at the proven beta with the proven margin; failure below it; resources."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given

from mqarkit.constructions import build
from mqarkit.constructions.attention_signcode import (
    decoy_batch,
    failure_beta,
    guaranteed_margin,
    min_readout_margin,
    sufficient_beta,
)
from mqarkit.oracle import score
from mqarkit.strategies import instances
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close


@given(instances(max_seq_len=64, fillers=("zero", "clean")))
def test_solves_every_clean_instance_at_the_bound_with_the_stated_margin(inst):
    s = inst.spec
    con = build("attention_signcode", vocab_size=s.vocab_size, seq_len=s.seq_len, num_kv_pairs=s.num_kv_pairs)
    assert con.beta == sufficient_beta(s.seq_len, con.code_width)
    assert score(con.predict(inst.batch.inputs), inst.batch).accuracy == 1.0
    assert min_readout_margin(con, inst.batch) >= guaranteed_margin(con.code_width)


@pytest.mark.parametrize("shift", ["conv", "positional"])
def test_measured_minimum_margin(shift):
    spec = MQARSpec(128, 64, 8, filler="clean")
    batch = generate(spec, 40, np.random.default_rng(0))
    con = build("attention_signcode", vocab_size=128, seq_len=64, num_kv_pairs=8, shift=shift)
    margin = min_readout_margin(con, batch)
    # measured about 0.27 at c=128, N=64, D=8 (m=7): between the guaranteed 1/m = 0.143 and the noiseless 2/m = 0.286
    assert guaranteed_margin(7) <= margin <= 2 / 7 + 1e-12


@pytest.mark.parametrize("N,D", [(32, 4), (64, 4), (128, 8)])
def test_decoy_instance_fails_below_and_passes_at_the_bound(N, D):
    c = N + 64
    spec = MQARSpec(c, N, D, filler="clean")
    batch, K = decoy_batch(spec, math.ceil(math.log2(c)), np.random.default_rng(N))
    m = math.ceil(math.log2(c))

    def acc(beta):
        con = build(
            "attention_signcode", vocab_size=c, seq_len=N, num_kv_pairs=D, beta=beta, outside_claimed_range=True
        )
        return score(con.predict(batch.inputs), batch).accuracy

    assert acc(0.9 * failure_beta(K, m)) < 1.0  # well below (m/2) ln K: the decoy query fails
    assert acc(sufficient_beta(N, m)) == 1.0
    con = build("attention_signcode", vocab_size=c, seq_len=N, num_kv_pairs=D)
    assert min_readout_margin(con, batch) >= guaranteed_margin(m)


@pytest.mark.parametrize("c,N,D,shift", [(5, 4, 1, "conv"), (65, 64, 16, "conv"), (300, 256, 3, "positional")])
def test_claimed_resources_equal_measured(c, N, D, shift):
    assert (
        build("attention_signcode", vocab_size=c, seq_len=N, num_kv_pairs=D, shift=shift).resources().mismatches() == {}
    )


def test_bad_input_raises():
    with pytest.raises(ValueError, match="cannot separate vocab_size=5000"):
        build("attention_signcode", vocab_size=5000, seq_len=16, num_kv_pairs=2, code_width=12)
    with pytest.raises(ValueError, match="shift"):
        build("attention_signcode", vocab_size=20, seq_len=16, num_kv_pairs=2, shift="rotary")
    with pytest.raises(ValueError, match="beta"):
        build("attention_signcode", vocab_size=20, seq_len=16, num_kv_pairs=2, beta=-1.0)
    with pytest.raises(ValueError, match=r"beta=1e-06: the proof needs beta >= sufficient_beta.*outside the claimed"):
        build("attention_signcode", vocab_size=20, seq_len=16, num_kv_pairs=2, beta=1e-6)
    below = build(
        "attention_signcode", vocab_size=20, seq_len=16, num_kv_pairs=2, beta=1e-6, outside_claimed_range=True
    )
    assert not below.within_claimed_range and "outside_claimed_range=True" in repr(below)
    assert build("attention_signcode", vocab_size=20, seq_len=16, num_kv_pairs=2).within_claimed_range
    with pytest.raises(ValueError, match="unknown"):
        build("attention_signcode", vocab_size=20, seq_len=16, num_kv_pairs=2, window=3)
    with pytest.raises(ValueError, match="backend"):
        build("attention_signcode", vocab_size=20, seq_len=16, num_kv_pairs=2).predict(np.zeros((1, 16), int), "exact")


@pytest.mark.slow
def test_large_n():
    spec = MQARSpec(1100, 1024, 128, filler="clean")
    batch = generate(spec, 2, np.random.default_rng(1))
    con = build("attention_signcode", vocab_size=1100, seq_len=1024, num_kv_pairs=128)
    assert score(con.predict(batch.inputs), batch).accuracy == 1.0
    assert min_readout_margin(con, batch) >= guaranteed_margin(con.code_width)


# --------------------------------------------------------------------------------------------------------------------
# the causal mask (issue 18) and the adversarial family (the sharp minimum margin)


def test_causal_mask_beta_counts_one_more_position() -> None:
    from mqarkit.constructions.attention_signcode import non_matching_bound, sufficient_beta

    assert non_matching_bound(64, "strict") == 62 and non_matching_bound(64, "causal") == 63
    assert_close(sufficient_beta(64, 7, mask="causal"), 3.5 * np.log(4 * 63))
    assert sufficient_beta(64, 7, mask="causal") > sufficient_beta(64, 7)
    with pytest.raises(ValueError, match="mask='full'"):
        non_matching_bound(64, "full")


@pytest.mark.parametrize("mask", ["strict", "causal"])
@pytest.mark.parametrize("c, N", [(32, 16), (256, 64), (1024, 256)])
def test_worst_case_family_margin_equals_the_formula(mask: str, c: int, N: int) -> None:
    from mqarkit.constructions.attention_signcode import (
        guaranteed_margin,
        sufficient_beta,
        worst_case_batch,
        worst_case_margin,
    )

    m = (c - 1).bit_length()
    con = build("attention_signcode", vocab_size=c, seq_len=N, num_kv_pairs=1, mask=mask)
    batch = worst_case_batch(MQARSpec(c, N, 1, filler="clean"), mask)
    want = worst_case_margin(N, m, sufficient_beta(N, m, mask=mask), mask)
    assert_close(min_readout_margin(con, batch), want)
    assert guaranteed_margin(m) < want < 1.3 / m


def test_worst_case_margin_decreases_towards_six_fifths() -> None:
    from mqarkit.constructions.attention_signcode import sufficient_beta, worst_case_margin

    m = 13
    ratios = [m * worst_case_margin(n, m, sufficient_beta(n, m)) for n in (16, 64, 256, 1024, 4096)]
    assert all(a > b for a, b in zip(ratios, ratios[1:])) and 1.2 < ratios[-1] < 1.2005


def test_worst_case_batch_rejects_bad_specs() -> None:
    from mqarkit.constructions.attention_signcode import worst_case_batch, worst_case_margin

    with pytest.raises(ValueError, match="vocab_size=34"):
        worst_case_batch(MQARSpec(34, 16, 1, filler="clean"))
    with pytest.raises(ValueError, match="num_kv_pairs=1"):
        worst_case_batch(MQARSpec(64, 16, 2, filler="clean"))
    with pytest.raises(ValueError, match="seq_len=5"):
        worst_case_margin(5, 6, 1.0)
