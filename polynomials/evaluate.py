"""Evaluate a model (or a single op) in float64, exactly over Q, or symbolically.

``evaluate(model_or_op, u, backend=..., trace=False)``:

- ``"float64"``: ``u`` is ``(N, d)`` or a batch ``(B, N, d)`` of numbers; returns a float64 array. Weights are
  converted once per op and cached; long filters (``k > 64``) use FFT convolution.
- ``"exact"``: ``u`` holds ints / Fractions (an int array or an object array); returns an object array of
  ``Fraction``. Softmax raises :class:`NotExactError`; division (normalised linear attention) is exact.
- ``"symbolic"``: ``u`` is an object array whose entries are numbers or sympy polynomial expressions (e.g. Symbols);
  returns an object array of expanded sympy expressions with rational coefficients (sympy ``Rational``, never
  ``Float``). Internally a sparse polynomial ring over QQ in the input's free symbols (rerun over the expression
  domain EX if some constant is irrational, e.g. ``sqrt(3)``). Softmax, argmax and normalised linear attention raise
  :class:`NotExactError` (we do not keep ``exp`` symbolic).

The result is the final stream state ``(..., N, width)`` of a model (use :func:`read` to take a block), or the op's
output. ``trace=True`` returns the list of states after each layer instead, index 0 being the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .backends import (
    Backend,
    ExactBackend,
    Float64Backend,
    NeedsExpressionDomain,
    SymbolicBackend,
    input_symbols,
)
from .model import Layer, Model
from .op_base import Op, check_seq_len
from .readout import ArgmaxReadout

BACKEND_NAMES = ("float64", "exact", "symbolic")


def _apply_layer(layer: Layer, model: Model, state: np.ndarray, backend: Backend) -> np.ndarray:
    stream = model.stream
    parts = [state[..., stream.slice(n)] for n in layer.reads]
    x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
    y = layer.op.apply(x, backend)
    if not layer.residual and layer.writes == stream.names:
        return y  # the layer replaces the whole stream
    new = state.copy()
    start = 0
    for n in layer.writes:
        sl = stream.slice(n)
        part = y[..., start : start + (sl.stop - sl.start)]
        new[..., sl] = new[..., sl] + part if layer.residual else part
        start += sl.stop - sl.start
    return new


def _run(target: Model | Op, u: np.ndarray, backend: Backend, trace: bool) -> list[np.ndarray]:
    states = [u]
    if isinstance(target, Model):
        target.check(u.shape[-2])
        for i, layer in enumerate(target.layers):
            try:
                states.append(_apply_layer(layer, target, states[-1], backend))
            except NeedsExpressionDomain:
                raise
            except ValueError as err:
                if str(err).startswith("Model"):
                    raise
                raise type(err)(f"Model{' ' + repr(target.name) if target.name else ''} layer {i}: {err}") from err
            if not trace:
                states = [states[-1]]
    else:
        states.append(target.apply(u, backend))
    return states


def _check_shape(target: Any, u: np.ndarray, backend: str) -> None:
    width = target.width if isinstance(target, Model) else target.in_width
    allowed_ndim = (2, 3)
    if u.ndim not in allowed_ndim:
        raise ValueError(f"u: shape {u.shape} must be (N, d) or (B, N, d) (backend={backend!r})")
    if u.shape[-1] != width:
        raise ValueError(f"u: shape {u.shape}; the last axis must be the width {width}")
    if u.shape[-2] < 1:
        raise ValueError(f"u: shape {u.shape}; needs N >= 1 positions")


def evaluate_ring(target: Model | Op, u: np.ndarray, trace: bool = False) -> tuple[list[np.ndarray], SymbolicBackend]:
    """Symbolic evaluation kept in the polynomial ring (for degree and term counts). Returns (states, backend)."""
    arr = np.asarray(u, dtype=object)
    _check_shape(target, arr, "symbolic")
    gens = input_symbols(arr)
    for domain in ("QQ", "EX"):
        backend = SymbolicBackend(gens, domain)
        try:
            return _run(target, backend.input(arr), backend, trace), backend
        except NeedsExpressionDomain:
            continue
    raise AssertionError("unreachable: the EX domain holds every constant")


def evaluate(
    model_or_op: Model | Op | ArgmaxReadout, u: object, *, backend: str = "float64", trace: bool = False
) -> np.ndarray | list[np.ndarray]:
    """See the module docstring."""
    if backend not in BACKEND_NAMES:
        raise ValueError(f"backend={backend!r}: must be one of {BACKEND_NAMES}")
    if isinstance(model_or_op, ArgmaxReadout):
        be = Float64Backend() if backend == "float64" else ExactBackend() if backend == "exact" else None
        if be is None:
            return model_or_op.apply(u, SymbolicBackend(()))  # raises NotExactError
        out = model_or_op.apply(be.input(u), be)
        return [np.asarray(u), out] if trace else out
    if not isinstance(model_or_op, (Model, Op)):
        raise ValueError(f"model_or_op: {model_or_op!r} is neither a Model nor an op of mqarkit.polynomials")
    if backend == "symbolic":
        states, be = evaluate_ring(model_or_op, u, trace)
        exprs = [be.to_expr(s) for s in states]
        return exprs if trace else exprs[-1]
    be = Float64Backend() if backend == "float64" else ExactBackend()
    arr = be.input(u)
    _check_shape(model_or_op, arr, backend)
    states = _run(model_or_op, arr, be, trace)
    return states if trace else states[-1]


def embed(model: Model, blocks: Mapping[str, object], *, seq_len: int | None = None) -> np.ndarray:
    """Assemble a stream state ``(..., N, width)`` from named blocks; channels of other blocks are 0.

    Every given block must have shape ``(..., N, block_width)`` with the same leading shape. The result is float64
    when every block is a float/int array, else an object array (ints, Fractions, sympy expressions).
    """
    if not isinstance(model, Model):
        raise TypeError(f"model: must be a Model, got {type(model).__name__}")
    if not isinstance(blocks, Mapping):
        raise TypeError(f"blocks: must be a mapping of block name -> array, got {type(blocks).__name__}")
    if seq_len is not None:
        seq_len = check_seq_len(seq_len)
    if not blocks:
        if seq_len is None:
            raise ValueError("blocks: empty; give at least one block, or seq_len")
        return np.zeros((seq_len, model.width))
    arrays = {}
    lead = None
    for name, value in blocks.items():
        arr = np.asarray(value)
        width = model.stream.block_width(name)
        if arr.ndim < 2 or arr.shape[-1] != width:
            raise ValueError(f"embed: block {name!r} has shape {arr.shape}; expected (..., N, {width})")
        if lead is None:
            lead = arr.shape[:-1]
        elif arr.shape[:-1] != lead:
            raise ValueError(f"embed: block {name!r} has leading shape {arr.shape[:-1]}; other blocks have {lead}")
        arrays[name] = arr
    assert lead is not None
    if seq_len is not None and lead[-1] != seq_len:
        raise ValueError(f"embed: blocks have N={lead[-1]} positions but seq_len={seq_len}")
    if any(a.dtype == object for a in arrays.values()):
        state = np.full((*lead, model.width), 0, dtype=object)
    elif all(a.dtype.kind in "iu" for a in arrays.values()):
        state = np.zeros((*lead, model.width), dtype=np.int64)
    else:
        state = np.zeros((*lead, model.width), dtype=np.float64)
    for name, arr in arrays.items():
        state[..., model.stream.slice(name)] = arr
    return state


def read(model: Model, stream_state: np.ndarray, block: str) -> np.ndarray:
    """The channels of ``block`` from a stream state ``(..., N, width)``."""
    if not isinstance(model, Model):
        raise TypeError(f"model: must be a Model, got {type(model).__name__}")
    state = np.asarray(stream_state)
    if state.shape[-1] != model.width:
        raise ValueError(f"read: state has shape {state.shape}; last axis must be the stream width {model.width}")
    return state[..., model.stream.slice(block)]
