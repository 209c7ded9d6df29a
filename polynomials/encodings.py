"""Token encodings (theory.md §1.3): one-hot, binary, sign and p-hot codes.

Conventions, shared by all encodings:

- ``encode(tokens: int array (...)) -> (..., width)`` int64; tokens outside ``[0, vocab_size)`` raise ``ValueError``.
- ``codebook() -> (vocab_size, width)`` int64, row ``t`` = ``encode(t)``.
- ``decode(vectors: (..., width) float) -> (...)`` int64 returns the *nearest* codeword in Euclidean distance, among
  the valid tokens only, i.e. ``argmax_t (2 <v, c_t> - |c_t|^2)``. Ties go to the lowest token id (documented, not
  an error: e.g. an all-zero vector decodes to 0 under one-hot).
- Binary digits are little-endian: bit ``k`` of ``t`` is channel ``k``. p-hot digits too: digit ``k`` (base ``b``) is
  one-hot in channels ``k*b .. k*b+b-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqarkit.memory import check_memory

_DECODE_CHUNK = 1 << 12  # rows of vectors per chunk when decoding against a codebook


def _check_vocab(vocab_size: object, name: str) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise ValueError(f"{name}.vocab_size={vocab_size!r}: must be an int >= 1")
    return int(vocab_size)


def _tokens(tokens: object, vocab_size: int, name: str, width: int) -> np.ndarray:
    """``tokens`` as int64, checked: integers in ``[0, vocab_size)`` whose ``(..., width)`` code fits in memory."""
    arr = np.asarray(tokens)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}.encode: tokens have dtype {arr.dtype}; must be integers")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise ValueError(f"{name}.encode: tokens must lie in [0, vocab_size={vocab_size})")
    check_memory(
        8 * arr.size * width, parameter=f"tokens.size={arr.size}", what=f"their int64 {name} codes of width {width}"
    )
    return arr.astype(np.int64)


def _check_codebook_memory(vocab_size: int, width: int, name: str) -> None:
    check_memory(
        8 * vocab_size * width, parameter=f"{name}.vocab_size={vocab_size}", what=f"the int64 codebook of width {width}"
    )


def _nearest(vectors: object, codebook: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim == 0 or v.shape[-1] != codebook.shape[1]:
        raise ValueError(f"{name}.decode: vectors have shape {v.shape}; last axis must be width={codebook.shape[1]}")
    flat = v.reshape(-1, v.shape[-1])
    cb = codebook.astype(np.float64)
    sq = (cb * cb).sum(axis=1)
    out = np.empty(flat.shape[0], dtype=np.int64)
    for start in range(0, flat.shape[0], _DECODE_CHUNK):
        scores = 2.0 * flat[start : start + _DECODE_CHUNK] @ cb.T - sq  # (rows, V)
        out[start : start + _DECODE_CHUNK] = np.argmax(scores, axis=1)  # first maximum on ties
    return out.reshape(v.shape[:-1])


def _bits(tokens: np.ndarray, width: int) -> np.ndarray:
    return ((tokens[..., None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.int64)


def _bit_width(vocab_size: int) -> int:
    """``m = max(1, ceil(log2 c))``: bits of the largest token ``c - 1`` (binary and sign codes)."""
    return max(1, (vocab_size - 1).bit_length())


class _NearestCodeword:
    """``codebook()`` = ``encode`` of every token, ``decode`` = nearest codeword (binary, sign and p-hot codes)."""

    def codebook(self) -> np.ndarray:
        _check_codebook_memory(self.vocab_size, self.width, type(self).__name__)  # type: ignore[attr-defined]
        return self.encode(np.arange(self.vocab_size))  # type: ignore[attr-defined]

    def decode(self, vectors: object) -> np.ndarray:
        return _nearest(vectors, self.codebook(), type(self).__name__)


@dataclass(frozen=True)
class OneHot:
    vocab_size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab_size", _check_vocab(self.vocab_size, "OneHot"))

    @property
    def width(self) -> int:
        return self.vocab_size

    def encode(self, tokens: object) -> np.ndarray:
        t = _tokens(tokens, self.vocab_size, "OneHot", self.width)
        return (t[..., None] == np.arange(self.vocab_size)).astype(np.int64)

    def codebook(self) -> np.ndarray:
        _check_codebook_memory(self.vocab_size, self.width, "OneHot")
        return np.eye(self.vocab_size, dtype=np.int64)

    def decode(self, vectors: object) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float64)
        if v.ndim == 0 or v.shape[-1] != self.width:
            raise ValueError(f"OneHot.decode: vectors have shape {v.shape}; last axis must be width={self.width}")
        return np.argmax(v, axis=-1).astype(np.int64)  # nearest one-hot vector = largest entry


@dataclass(frozen=True)
class BinaryCode(_NearestCodeword):
    """``t -> bits of t`` in {0, 1}^m, ``m = max(1, ceil(log2 c))``."""

    vocab_size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab_size", _check_vocab(self.vocab_size, "BinaryCode"))

    @property
    def width(self) -> int:
        return _bit_width(self.vocab_size)

    def encode(self, tokens: object) -> np.ndarray:
        return _bits(_tokens(tokens, self.vocab_size, "BinaryCode", self.width), self.width)


@dataclass(frozen=True)
class SignCode(_NearestCodeword):
    """``t -> 2*bits(t) - 1`` in {-1, +1}^m, ``m = max(1, ceil(log2 c))``."""

    vocab_size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab_size", _check_vocab(self.vocab_size, "SignCode"))

    @property
    def width(self) -> int:
        return _bit_width(self.vocab_size)

    def encode(self, tokens: object) -> np.ndarray:
        return 2 * _bits(_tokens(tokens, self.vocab_size, "SignCode", self.width), self.width) - 1


def integer_root_ceil(c: int, p: int) -> int:
    """The least integer ``b >= 1`` with ``b**p >= c`` (exact: no floating-point roots)."""
    b = max(1, int(round(c ** (1.0 / p))))
    while b**p < c:
        b += 1
    while b > 1 and (b - 1) ** p >= c:
        b -= 1
    return b


@dataclass(frozen=True)
class PHot(_NearestCodeword):
    """``t`` written in base ``b = ceil(c^(1/p))`` with ``p`` digits, each digit one-hot: width ``p*b``."""

    vocab_size: int
    p: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab_size", _check_vocab(self.vocab_size, "PHot"))
        if isinstance(self.p, bool) or not isinstance(self.p, (int, np.integer)) or self.p < 1:
            raise ValueError(f"PHot.p={self.p!r}: must be an int >= 1")
        object.__setattr__(self, "p", int(self.p))

    @property
    def base(self) -> int:
        return integer_root_ceil(self.vocab_size, self.p)

    @property
    def width(self) -> int:
        return self.p * self.base

    def encode(self, tokens: object) -> np.ndarray:
        t = _tokens(tokens, self.vocab_size, "PHot", self.width)
        b = self.base
        digits = (t[..., None] // (b ** np.arange(self.p, dtype=np.int64))) % b  # (..., p), little-endian
        onehot = digits[..., None] == np.arange(b)  # (..., p, b)
        return onehot.reshape(*t.shape, self.p * b).astype(np.int64)
