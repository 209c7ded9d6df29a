"""Depthwise convolutions along the sequence: causal and cyclic, direct and FFT kernels.

Channel ``q`` of the output sees channel ``q`` of the input only (depthwise). With taps ``h: (k, d)``:

- causal:  ``y[i, q] = sum_{s < k, s <= i} h[s, q] * u[i - s, q]``  (zero for ``i - s < 0``);
- cyclic:  ``y[i, q] = sum_{s < k} h[s, q] * u[(i - s) mod N, q]``.

In the polynomial view (theory.md §2.2) with ``u_q(X) = sum_i u[i, q] X^i``: causal is ``h_q(X) u_q(X) mod X^N``,
cyclic is ``h_q(X) u_q(X) mod (X^N - 1)``; both need ``k <= N`` (``check``).

Two kernels compute each: the direct sum over taps (any backend; taps that are zero in every channel are skipped, which
keeps sparse symbolic filters cheap) and, for float64 with ``k > FFT_THRESHOLD``, an FFT product (causal: zero-padded
linear convolution of length ``>= N + k - 1`` truncated to ``N``; cyclic: the length-``N`` DFT). Tests compare them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import Backend
from .op_base import Op, check_input, param_count
from .weights import as_weight

FFT_THRESHOLD = 64  # float64 convolutions with more taps than this use the FFT kernel


def next_fast_len(n: int) -> int:
    """The least ``2^a 3^b 5^c >= n`` (a fast FFT length)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _nonzero_taps(taps: np.ndarray) -> list[int]:
    return [s for s in range(taps.shape[0]) if any(t != 0 for t in taps[s])]


def conv_direct(x: np.ndarray, taps: np.ndarray, backend: Backend, *, cyclic: bool, active=None) -> np.ndarray:
    """Direct depthwise convolution. ``x: (..., N, d)``, ``taps: (k, d)`` in the backend's numbers."""
    n = x.shape[-2]
    y = backend.zeros(x.shape)
    for s in range(taps.shape[0]) if active is None else active:
        if cyclic:
            y = y + taps[s] * np.roll(x, s, axis=-2)
        elif s < n:
            y[..., s:, :] = y[..., s:, :] + taps[s] * x[..., : n - s, :]
    return y


def conv_fft(x: np.ndarray, spectrum: np.ndarray, nfft: int) -> np.ndarray:
    """FFT depthwise convolution in float64: ``spectrum = rfft(taps.T, nfft)`` of shape ``(d, nfft//2 + 1)``."""
    n = x.shape[-2]
    xt = np.ascontiguousarray(np.swapaxes(x, -1, -2))  # (..., d, N)
    y = np.fft.irfft(np.fft.rfft(xt, n=nfft, axis=-1) * spectrum, n=nfft, axis=-1)[..., :n]
    return np.swapaxes(y, -1, -2)


def fft_plan(taps: np.ndarray, n: int, cyclic: bool) -> tuple[np.ndarray, int]:
    """``(spectrum (d, nfft//2+1), nfft)`` for float64 taps ``(k, d)`` on sequences of length ``n``."""
    k = taps.shape[0]
    nfft = n if cyclic else next_fast_len(n + k - 1)
    return np.fft.rfft(taps.T, n=nfft, axis=-1), nfft


def depthwise_conv(op: Op, field: str, x: np.ndarray, backend: Backend, *, cyclic: bool) -> np.ndarray:
    """Apply the depthwise filter ``getattr(op, field)`` to ``x`` with the fastest exact-enough kernel."""
    raw = getattr(op, field)
    n = x.shape[-2]
    if backend.name == "float64" and raw.shape[0] > FFT_THRESHOLD:
        taps = backend.weight(op, field)
        spectrum, nfft = backend.derived(op, f"{field}-fft-{n}-{cyclic}", lambda: fft_plan(taps, n, cyclic))
        return conv_fft(x, spectrum, nfft)
    active = backend.derived(op, f"{field}-active", lambda: _nonzero_taps(raw))
    return conv_direct(x, backend.weight(op, field), backend, cyclic=cyclic, active=active)


def check_filter(op_name: str, taps: np.ndarray, seq_len: int) -> None:
    if taps.shape[0] > seq_len:
        raise ValueError(
            f"{op_name}.taps/filters: filter length k={taps.shape[0]} is longer than the sequence N={seq_len}"
        )


@dataclass(frozen=True, eq=False)
class _DepthwiseConv(Op):
    taps: np.ndarray  # (k, d)

    mixes_sequence = True
    cyclic = False

    def __post_init__(self) -> None:
        taps = as_weight(self.taps, op=type(self).__name__, field="taps", ndim=2)
        if taps.shape[0] < 1 or taps.shape[1] < 1:
            raise ValueError(f"{type(self).__name__}.taps: shape {taps.shape} must be (k >= 1, d >= 1)")
        object.__setattr__(self, "taps", taps)

    @property
    def in_width(self) -> int:
        return self.taps.shape[1]

    @property
    def out_width(self) -> int:
        return self.taps.shape[1]

    @property
    def num_parameters(self) -> int:
        return param_count(self.taps)

    def check(self, seq_len: int) -> None:
        super().check(seq_len)
        check_filter(type(self).__name__, self.taps, seq_len)

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        check_input(self, x)
        self.check(x.shape[-2])
        return depthwise_conv(self, "taps", x, backend, cyclic=self.cyclic)

    def degree(self, input_degree: int) -> int:
        return input_degree

    def state_numbers(self, seq_len: int) -> int:
        return conv_state_numbers(self.taps.shape[0], self.in_width, seq_len, self.cyclic)

    def flops(self, seq_len: int) -> int:
        return 2 * seq_len * self.taps.shape[0] * self.in_width


def conv_state_numbers(k: int, d: int, seq_len: int, cyclic: bool) -> int:
    """Causal: the last ``k - 1`` inputs per channel. Cyclic: output 0 already needs the last input, so a step-by-step
    recurrent form does not exist; we count the cache of a long causal filter, ``(N - 1) * d``."""
    return (seq_len - 1) * d if cyclic else (k - 1) * d


@dataclass(frozen=True, eq=False)
class CausalConv(_DepthwiseConv):
    """``y[i, q] = sum_{s<k} taps[s, q] u[i-s, q]`` (zero-filled)."""


@dataclass(frozen=True, eq=False)
class CyclicConv(_DepthwiseConv):
    """``y[i, q] = sum_{s<k} taps[s, q] u[(i-s) mod N, q]``."""

    cyclic = True
