"""Token encodings: widths, round trips, nearest-code decoding, invalid tokens."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqarkit.polynomials import BinaryCode, OneHot, PHot, SignCode
from mqarkit.polynomials.encodings import integer_root_ceil


@given(c=st.integers(1, 300), p=st.integers(1, 4))
def test_widths(c: int, p: int) -> None:
    m = max(1, int(np.ceil(np.log2(c)))) if c > 1 else 1
    assert OneHot(c).width == c
    assert BinaryCode(c).width == m and SignCode(c).width == m
    b = integer_root_ceil(c, p)
    assert b**p >= c and (b == 1 or (b - 1) ** p < c)
    assert PHot(c, p).width == p * b


@pytest.mark.parametrize("enc", [OneHot(7), BinaryCode(7), SignCode(9), PHot(10, 2), PHot(27, 3), BinaryCode(1)])
def test_codebook_distinct_roundtrip_and_noise(enc) -> None:
    cb = enc.codebook()
    assert cb.shape == (enc.vocab_size, enc.width) and cb.dtype == np.int64
    assert len({tuple(r) for r in cb}) == enc.vocab_size  # injective
    tokens = np.arange(enc.vocab_size).reshape(1, -1)
    assert (enc.encode(tokens)[0] == cb).all()
    assert (enc.decode(enc.encode(tokens).astype(float)) == tokens).all()
    rng = np.random.default_rng(0)
    noisy = enc.encode(tokens) + rng.uniform(-0.2, 0.2, size=(1, enc.vocab_size, enc.width))
    assert (enc.decode(noisy) == tokens).all()


def test_decode_is_nearest_valid_code_with_lowest_id_on_ties() -> None:
    enc = BinaryCode(5)  # codes 0..4 in 3 bits; 7 = 111 is not a token
    # nearest valid code to 111: 011 (3, distance 1) beats 100 (4, distance 2)
    assert enc.decode(np.array([1.0, 1.0, 1.0])) == 3
    assert OneHot(4).decode(np.zeros(4)) == 0  # tie: lowest token id
    assert SignCode(4).encode(np.array(2)).tolist() == [-1, 1]  # little-endian bits of 2 = 0, 1


@pytest.mark.parametrize("enc", [OneHot(4), BinaryCode(4), SignCode(4), PHot(4, 2)])
def test_invalid_tokens(enc) -> None:
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, vocab_size=4\)"):
        enc.encode(np.array([0, 4]))
    with pytest.raises(ValueError, match="tokens must lie"):
        enc.encode(np.array([-1]))
    with pytest.raises(ValueError, match="must be integers"):
        enc.encode(np.array([0.5]))
    with pytest.raises(ValueError, match="last axis must be width"):
        enc.decode(np.zeros((2, enc.width + 1)))


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="vocab_size=0"):
        OneHot(0)
    with pytest.raises(ValueError, match="PHot.p=0"):
        PHot(4, 0)
