"""``ArgmaxReadout``: vectors -> token ids by the largest inner product with a codebook.

``scores(x) = x @ codebook.T`` (``(..., V)``); ``apply`` returns ``token_ids[argmax scores]`` with ties going to the
lowest codebook row (NumPy's argmax). Use ``scores`` to measure margins. Not a stream op: it ends a computation,
so it cannot be a layer of a :class:`~.model.Model`; :func:`~.evaluate.evaluate` accepts it directly
(float64 and exact backends; under symbolic an argmax is not a polynomial and raises ``NotExactError``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import Backend
from .op_base import param_count
from .weights import NotExactError, as_weight


@dataclass(frozen=True, eq=False)
class ArgmaxReadout:
    codebook: np.ndarray  # (V, w)
    token_ids: np.ndarray  # (V,) int64

    def __post_init__(self) -> None:
        cb = as_weight(self.codebook, op="ArgmaxReadout", field="codebook", ndim=2)
        ids = np.asarray(self.token_ids)
        if ids.dtype.kind not in "iu" or ids.shape != (cb.shape[0],):
            raise ValueError(
                f"ArgmaxReadout.token_ids: shape {ids.shape}, dtype {ids.dtype}; must be ({cb.shape[0]},) integers"
            )
        if cb.shape[0] < 1:
            raise ValueError("ArgmaxReadout.codebook: needs at least one row")
        ids = ids.astype(np.int64)
        ids.setflags(write=False)
        object.__setattr__(self, "codebook", cb)
        object.__setattr__(self, "token_ids", ids)

    @property
    def in_width(self) -> int:
        return self.codebook.shape[1]

    @property
    def out_width(self) -> int:
        return 1

    @property
    def num_parameters(self) -> int:
        return param_count(self.codebook)

    def check(self, seq_len: int) -> None:
        return None

    def scores(self, x: np.ndarray, backend: Backend | None = None) -> np.ndarray:
        """``x: (..., w) -> (..., V)`` inner products with every codebook row (float64 unless a backend is given)."""
        from .backends import Float64Backend

        backend = backend or Float64Backend()
        arr = backend.input(x) if not isinstance(x, np.ndarray) or x.dtype != object or backend.name == "float64" else x
        if arr.shape[-1] != self.in_width:
            raise ValueError(f"ArgmaxReadout: input has shape {arr.shape}; last axis must be w={self.in_width}")
        return arr @ backend.weight(self, "codebook").T

    def apply(self, x: np.ndarray, backend: Backend | None = None) -> np.ndarray:
        if backend is not None and backend.name == "symbolic":
            raise NotExactError("ArgmaxReadout: an argmax is not a polynomial; use backend 'float64' or 'exact'")
        s = self.scores(x, backend)
        if s.dtype == object:
            idx = np.empty(s.shape[:-1], dtype=np.int64)
            for pos in np.ndindex(*s.shape[:-1]):
                row = list(s[pos])
                idx[pos] = row.index(max(row))  # first maximum, like np.argmax
        else:
            idx = np.argmax(s, axis=-1)
        return self.token_ids[idx]

    __call__ = apply
