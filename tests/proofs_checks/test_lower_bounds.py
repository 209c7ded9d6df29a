from __future__ import annotations

import math

import pytest

from mqarkit.proofs_checks import lower_bounds as lb


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_binary_eq_has_degree_2m_and_sympy_agrees(m: int) -> None:
    r = lb.binary_eq_degree(m)
    assert r.degree == 2 * m
    assert r.terms == 4**m  # every subset of {x_b, y_b} pairs contributes: (2xy - x - y + 1) per bit
    assert r.sympy_agrees is True


def test_mobius_of_and_is_one_monomial() -> None:
    table = [0, 0, 0, 1]  # f(z0, z1) = z0 z1
    assert lb.mobius_coefficients(table).tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="power of two"):
        lb.mobius_coefficients([1, 2, 3])


@pytest.mark.parametrize(("base", "digits"), [(2, 1), (3, 1), (2, 2), (3, 2), (2, 3)])
def test_phot_eq_degree_is_exactly_2p(base: int, digits: int) -> None:
    r = lb.phot_eq_degree(base, digits)
    assert r.degree == 2 * digits
    assert r.certificate_value == 2**digits
    assert r.domain_size == base ** (2 * digits)
    assert r.monomials_checked == (base + 1) ** (2 * digits) - base ** (2 * digits)


def test_layers_for_degree() -> None:
    assert [lb.layers_for_degree(k) for k in (1, 2, 3, 4, 5, 8, 9, 16)] == [0, 1, 2, 2, 3, 3, 4, 4]
    assert lb.layers_for_degree(2 * lb.code_bits(2**16)) == 5
    with pytest.raises(ValueError, match="degree"):
        lb.layers_for_degree(0)


@pytest.mark.parametrize(("k", "v", "d"), [(1, 1, 1), (3, 2, 1), (3, 3, 2), (4, 3, 2), (4, 4, 3), (2, 5, 2)])
@pytest.mark.parametrize("key_set", ["fixed", "free"])
def test_min_states_equals_dictionary_count(k: int, v: int, d: int, key_set: str) -> None:
    got = lb.min_states_after_kv_block(k, v, d, key_set=key_set)
    assert got.min_states == lb.dictionary_count(k, v, d, key_set=key_set)
    perms_keys = 1 if key_set == "fixed" else math.perm(k, d)
    assert got.contexts == perms_keys * math.perm(v, d)


def test_min_states_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="num_pairs"):
        lb.min_states_after_kv_block(2, 5, 3, key_set="free")
    with pytest.raises(ValueError, match="key_set"):
        lb.min_states_after_kv_block(2, 2, 1, key_set="other")


def test_index_problem() -> None:
    assert [lb.index_problem_min_states(n) for n in range(1, 8)] == [2**n for n in range(1, 8)]
    assert lb.index_encoder_exists(3, 2) is False
    assert lb.index_encoder_exists(2, 1) is False
    assert lb.index_encoder_exists(2, 2) is True
    with pytest.raises(ValueError, match="too big"):
        lb.index_encoder_exists(5, 4)


def test_fano_edges() -> None:
    for v in (2, 3, 10, 100):
        for d in (1, 2, min(v, 5)):
            h = lb.information_minimum_bits(d, v)
            assert lb.fano_min_error(h, d, v) == 0.0
            assert lb.fano_min_error(h + 10, d, v) == 0.0
            e0 = lb.fano_min_error(0, d, v)
            assert 0 < e0 <= 1 - 1 / v
            errs = [lb.fano_min_error(h * t / 10, d, v) for t in range(11)]
            assert all(a >= b for a, b in zip(errs, errs[1:]))
    for v in (2, 3, 10, 256):
        assert lb.fano_min_error(0, 1, v) == pytest.approx(1 - 1 / v, abs=1e-12)
    p = lb.fano_min_error(0.25, 1, 2)  # V = 2: h(P_e) = 1 - S
    assert lb.binary_entropy(p) == pytest.approx(0.75, abs=1e-9)
    assert lb.fano_max_accuracy(0, 1, 4) == pytest.approx(0.25)


def test_fano_bad_input() -> None:
    with pytest.raises(ValueError, match="state_bits"):
        lb.fano_min_error(-1, 1, 4)
    with pytest.raises(ValueError, match="num_values"):
        lb.fano_min_error(0, 1, 1)
    with pytest.raises(ValueError, match="num_pairs"):
        lb.fano_min_error(0, 5, 4)


def test_information_minimum_is_exact_log() -> None:
    assert lb.information_minimum_bits(3, 8) == math.log2(8 * 7 * 6)
    assert lb.falling_factorial(5, 2) == 20
