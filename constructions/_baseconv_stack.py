"""A BaseConv MQAR model as three parts: a replicating embedding, a BaseConv stack, a summing unembedding.

Shapes: ``w`` = code width (one-hot ``c`` or sign ``m``), ``d`` = width of the BaseConv stack.

    code (N, w)  --embed (w, d)-->  work (N, d)  --BaseConv layers (d -> d)-->  work (N, d)  --unembed (d, w)-->  (N, w)

The embedding is linear (it copies the token code into every channel group: the conv branch of a BaseConv layer is
depthwise, so a group can only shift a code it holds itself); the unembedding is linear (it sums the groups' outputs).
Neither mixes positions, so neither counts as a layer (the IR's policy) nor raises the degree; the readout is the
argmax of the inner product with the codebook (``ArgmaxReadout``).

In the IR: stream blocks ``token`` (w), ``work`` (d), ``out`` (w); ``Linear`` embed (token -> work), the BaseConv
layers (work -> work), ``Linear`` unembed (work -> out), every layer non-residual. Resources follow
``mqarkit.polynomials.analyse``: width ``2w + d``, parameters = every stored entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mqarkit.constructions._baseconv_ir import as_op, exact_array
from mqarkit.constructions._baseconv_reference import ConvWeights, reference_stack
from mqarkit.constructions.api import Resources, count_nonzero_parameters


@dataclass(frozen=True)
class StackWeights:
    embed: np.ndarray  # (w, d)
    layers: list[ConvWeights]  # each on width d
    unembed: np.ndarray  # (d, w)

    @property
    def code_width(self) -> int:
        return int(self.embed.shape[0])

    @property
    def width(self) -> int:
        return int(self.embed.shape[1])


def reference_output(weights: StackWeights, code: np.ndarray) -> np.ndarray:
    """The naive loop oracle: ``code`` (N, w) (numbers or sympy) -> (N, w) object array."""
    embedded = np.asarray(code, dtype=object) @ weights.embed.astype(object)
    return reference_stack(embedded, weights.layers) @ weights.unembed.astype(object)


def as_ir_model(weights: StackWeights, name: str = "") -> Any:
    """The IR model of these weights (see the module docstring)."""
    from mqarkit.polynomials import Layer, Linear, Model, Stream

    w, d = weights.code_width, weights.width
    stream = Stream.of(("token", w), ("work", d), ("out", w))
    layers = [Layer(Linear(weight=exact_array(weights.embed)), ("token",), ("work",), residual=False)]
    layers += [Layer(as_op(layer), ("work",), ("work",), residual=False) for layer in weights.layers]
    layers.append(Layer(Linear(weight=exact_array(weights.unembed)), ("work",), ("out",), residual=False))
    return Model(stream, tuple(layers), name)


def run_ir_model(model: Any, code: np.ndarray, backend: str) -> np.ndarray:
    """``code`` (n, N, w) or (N, w) -> the ``out`` block (same leading shape, w), evaluated by the IR."""
    from mqarkit.polynomials import embed, evaluate, read

    state = embed(model, {"token": code})
    return read(model, evaluate(model, state, backend=backend), "out")


def argmax_predict(out: np.ndarray, codebook: np.ndarray, backend: str) -> np.ndarray:
    """``out`` (..., w) -> (...) int64 token ids, ``argmax_u <out, code(u)>`` via the IR's ``ArgmaxReadout``."""
    from mqarkit.polynomials import ArgmaxReadout, evaluate

    readout = ArgmaxReadout(codebook=codebook, token_ids=np.arange(codebook.shape[0], dtype=np.int64))
    return np.asarray(evaluate(readout, out, backend=backend), dtype=np.int64)


def ir_conv_layers(model: Any) -> list[Any]:
    """The BaseConv ops of a model built by :func:`as_ir_model`, in order."""
    from mqarkit.polynomials import BaseConv

    return [layer.op for layer in model.layers if isinstance(layer.op, BaseConv)]


def nonzero_parameters(model: Any) -> int:
    """Non-zero weight entries of every op of the model (the sparse count of erratum 9), read off the IR ops."""
    return count_nonzero_parameters(model)


def channel_degree(model: Any) -> int:
    """Degree of the ``out`` block in the token code, propagated channel by channel through the weights' supports.

    A BaseConv channel ``q`` has degree ``deg(lin_q) + deg(conv_q)``, where ``deg(lin_q)`` is the largest degree of a
    channel ``p`` with ``W[p, q] != 0`` (0 for a bias alone; the branch is absent, ``-inf``, if both vanish) and
    ``deg(conv_q)`` that of channel ``q`` if some tap is non-zero (0 for a bias alone). This is an upper bound read off
    the weights, tighter than ``2^L``; it is exact unless terms cancel (the symbolic tests check it is exact)."""
    from mqarkit.polynomials import BaseConv, Linear

    neg = -(10**9)
    deg: np.ndarray | None = None
    for layer in model.layers:
        op = layer.op
        if isinstance(op, Linear):
            w = np.asarray(op.weight) != 0
            src = np.ones(w.shape[0], dtype=np.int64) if deg is None else deg
            cand = np.where(w, src[:, None], neg)
            deg = cand.max(axis=0)
            if op.bias is not None:
                deg = np.maximum(deg, np.where(np.asarray(op.bias).reshape(-1, w.shape[1]).any(axis=0), 0, neg))
        elif isinstance(op, BaseConv):
            assert deg is not None
            w = np.asarray(op.weight) != 0
            lin = np.where(w, deg[:, None], neg).max(axis=0)
            if op.bias_linear is not None:
                b1 = np.asarray(op.bias_linear).reshape(-1, w.shape[1]).any(axis=0)
                lin = np.maximum(lin, np.where(b1, 0, neg))
            taps = (np.asarray(op.filters) != 0).any(axis=0)
            conv = np.where(taps, deg, neg)
            if op.bias_conv is not None:
                b2 = np.asarray(op.bias_conv).reshape(-1, w.shape[1]).any(axis=0)
                conv = np.maximum(conv, np.where(b2, 0, neg))
            deg = np.where((lin > neg // 2) & (conv > neg // 2), lin + conv, neg)
        else:
            raise ValueError(f"model: op {op.label} is not part of a BaseConv stack")
    assert deg is not None
    return int(deg.max())


def measured_resources(model: Any, seq_len: int) -> Resources:
    """Resources read off the IR model: ``analyse`` for layers / width / parameters / state, the weights' supports for
    the degree (:func:`channel_degree`)."""
    from mqarkit.polynomials import analyse

    return Resources.from_analysis(analyse(model, seq_len), degree=channel_degree(model))
