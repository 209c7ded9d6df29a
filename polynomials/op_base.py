"""The common interface of every operator of the IR.

An op is a frozen dataclass holding validated NumPy weights (see :mod:`.weights`). It maps one example or a batch
``x: (..., N, in_width) -> (..., N, out_width)`` and reports its resources. The arithmetic is supplied by a backend
(:mod:`.backends`), so each op is written once and evaluates in float64, exactly over Q, and symbolically.

Resource policies (used by :mod:`.analysis`):

- ``num_parameters``: every stored entry of every weight array (dense matrices count all entries, filters ``k*d``,
  biases as stored: ``d`` or ``N*d``); scalar knobs such as an inverse temperature count 0.
- ``flops(N)``: floating-point operations of the direct (non-FFT) evaluation of one example of length ``N``: a
  multiply-add is 2, an elementwise product or sum 1; masked attention pairs are not counted; softmax's
  exponentials count 1 per allowed pair (plus one normalising division per output entry).
- ``state_numbers(N)``: numbers the op's recurrent form carries from one step to the next when run on length ``N``.
- ``degree(e)``: total degree of the output entries, as polynomials of the input entries, when the inputs have
  degree at most ``e``; ``None`` for non-polynomial ops.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .backends import Backend
from .weights import as_weight


def check_seq_len(seq_len: object) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len={seq_len!r}: must be an int >= 1")
    return int(seq_len)


def check_input(op: object, x: np.ndarray) -> None:
    if x.ndim < 2 or x.shape[-1] != op.in_width:  # type: ignore[attr-defined]
        raise ValueError(
            f"{type(op).__name__}: input has shape {x.shape}; expected (..., N, in_width={op.in_width})"  # type: ignore[attr-defined]
        )


class WeightWidths:
    """Widths read off a dense ``weight (d_in, d_out)`` (``Linear``, ``BaseConv``)."""

    @property
    def in_width(self) -> int:
        return self.weight.shape[0]

    @property
    def out_width(self) -> int:
        return self.weight.shape[1]


class Op:
    """Base class of all operators. Subclasses are frozen dataclasses with ``eq=False`` (hashed by identity)."""

    mixes_sequence: ClassVar[bool] = False

    @property
    def in_width(self) -> int:
        raise NotImplementedError

    @property
    def out_width(self) -> int:
        raise NotImplementedError

    @property
    def num_parameters(self) -> int:
        raise NotImplementedError

    def check(self, seq_len: int) -> None:
        """Raise ``ValueError`` if the op cannot run on sequences of length ``seq_len``."""
        check_seq_len(seq_len)

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        """``x: (..., N, in_width)`` in the backend's numbers -> ``(..., N, out_width)``."""
        raise NotImplementedError

    def degree(self, input_degree: int) -> int | None:
        raise NotImplementedError

    def state_numbers(self, seq_len: int) -> int:
        return 0

    def flops(self, seq_len: int) -> int:
        raise NotImplementedError

    @property
    def label(self) -> str:
        return type(self).__name__


def as_bias(op_name: str, field: str, bias: object, width: int) -> np.ndarray | None:
    """``None``, or ``bias`` validated as a weight ``(width,)`` (one per channel) or ``(N, width)``
    (position-dependent; N checked in ``check`` by :func:`bias_seq_check`)."""
    if bias is None:
        return None
    b = as_weight(bias, op=op_name, field=field, ndim=(1, 2))
    if b.shape[-1] != width:
        raise ValueError(f"{op_name}.{field}: shape {b.shape}; last axis must be {width}")
    return b


def bias_seq_check(op_name: str, field: str, bias: np.ndarray | None, seq_len: int) -> None:
    if bias is not None and bias.ndim == 2 and bias.shape[0] != seq_len:
        raise ValueError(
            f"{op_name}.{field}: position-dependent bias has {bias.shape[0]} rows; the sequence has N={seq_len}"
        )


def param_count(*arrays: np.ndarray | None) -> int:
    return int(sum(a.size for a in arrays if a is not None))
