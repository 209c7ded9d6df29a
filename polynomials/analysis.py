"""Resources of a model, read off its ops; exact output degrees by symbolic evaluation.

Policies (one per quantity; the op-level definitions are in :mod:`.op_base`):

- ``layers``: number of sequence-mixing ops (convolutions, BaseConv, attention of any kind, linear attention);
  per-position ``Linear`` maps are not layers.
- ``width``: the stream width (sum of block widths).
- ``parameters``: sum of the ops' ``num_parameters``: every stored entry of every weight array (dense ``W`` counts
  ``d_in * d_out``, filters ``k * d``, biases as stored: ``d`` or ``N * d``); scalar knobs (``beta``, ``eps``) count 0.
- ``flops``: sum of the ops' direct-evaluation flop counts for one example of length ``seq_len`` (a multiply-add
  is 2 flops; residual additions of the stream are not counted).
- ``state_numbers``: numbers the recurrent form carries from one step to the next at this ``seq_len``, summed over
  ops: softmax / unnormalised attention ``(dk + dv) * N`` (window ``w``: ``(dk + dv) * min(w, N)``); linear attention
  ``F * dv`` for ``S`` plus ``F`` for ``z`` when normalised; causal convolution / BaseConv ``(k - 1) * d``; cyclic
  convolution ``(N - 1) * d`` (as a long causal filter: it has no true step-by-step form); ``Linear``: 0.
- ``degree_bound``: an upper bound on the total degree of the stream, propagated block by block (every input block
  has degree 1): a layer's output has degree ``op.degree(max degree of its reads)``; a residual write takes the max.
  For a BaseConv-only stack of ``L`` layers this is ``2^L``. ``None`` when a non-polynomial op (softmax, normalised
  linear attention) feeds the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqarkit.checks import check_int
from mqarkit.memory import check_memory

from .evaluate import evaluate_ring
from .model import Model
from .op_base import Op, check_seq_len

SYMBOL_BYTES = 64  # a lower bound of one sympy Symbol (object header, name, assumptions) and its array slot


@dataclass(frozen=True)
class ModelAnalysis:
    layers: int
    width: int
    parameters: int
    flops: int
    state_numbers: int
    degree_bound: int | None


def _as_model(target: Model | Op) -> Model:
    check_target(target)
    return target if isinstance(target, Model) else _one_op_model(target)


def check_target(target: object, name: str = "model") -> None:
    """``target`` must be a :class:`Model` or an op of this package."""
    if not isinstance(target, (Model, Op)):
        raise TypeError(f"{name}: must be a Model or an op of mqarkit.polynomials, got {type(target).__name__}")


def _one_op_model(op: Op) -> Model:
    from .model import Layer
    from .stream import Stream

    stream = Stream.of(("in", op.in_width), ("out", op.out_width))
    return Model(stream, (Layer(op, ("in",), ("out",), residual=False),))


def degree_bounds(model: Model) -> dict[str, int | None]:
    """Upper bound on the degree of each block after the last layer (see the module docstring)."""
    deg: dict[str, int | None] = {n: 1 for n in model.stream.names}
    for layer in model.layers:
        reads = [deg[n] for n in layer.reads]
        out = None if any(r is None for r in reads) else layer.op.degree(max(reads))  # type: ignore[type-var]
        for n in layer.writes:
            if out is None or (layer.residual and deg[n] is None):
                deg[n] = None
            else:
                deg[n] = max(deg[n], out) if layer.residual else out  # type: ignore[type-var]
    return deg


def analyse(model: Model | Op, seq_len: int) -> ModelAnalysis:
    """Resources of ``model`` at sequence length ``seq_len``; see the module docstring for the policies."""
    seq_len = check_seq_len(seq_len)
    m = _as_model(model)
    m.check(seq_len)
    ops = [layer.op for layer in m.layers]
    degs = degree_bounds(m).values()
    return ModelAnalysis(
        layers=sum(1 for op in ops if op.mixes_sequence),
        width=m.width,
        parameters=sum(op.num_parameters for op in ops),
        flops=sum(op.flops(seq_len) for op in ops),
        state_numbers=sum(op.state_numbers(seq_len) for op in ops),
        degree_bound=None if any(d is None for d in degs) else max(degs),  # type: ignore[type-var]
    )


def generic_input(seq_len: int, width: int, prefix: str = "u") -> np.ndarray:
    """``(N, width)`` object array of distinct sympy symbols ``u_i_q``."""
    import sympy

    seq_len, width = check_seq_len(seq_len), check_int("width", width, 1)
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix={prefix!r}: must be a non-empty string")
    check_memory(SYMBOL_BYTES * seq_len * width, parameter=f"seq_len={seq_len}, width={width}", what="the symbols")
    out = np.empty((seq_len, width), dtype=object)
    for i in range(seq_len):
        for q in range(width):
            out[i, q] = sympy.Symbol(f"{prefix}_{i}_{q}")
    return out


def total_degree(p: object) -> int:
    """Total degree of a ring element; ``-1`` for the zero polynomial."""
    monoms = list(p.itermonoms()) if hasattr(p, "itermonoms") else []
    if not monoms or (hasattr(p, "is_zero") and p.is_zero):
        return -1
    return max(sum(m) for m in monoms)


def output_degree(model: Model | Op, seq_len: int, block: str | None = None) -> np.ndarray:
    """Exact total degree of every output entry in the input entries: ``(N, w)`` int64 (``-1`` = zero polynomial).

    Evaluates the model symbolically on generic symbols ``u_i_q`` (one per input entry), so keep sizes small. For a
    model, ``block`` selects a block of the final stream (default: the whole stream).
    """
    seq_len = check_seq_len(seq_len)
    check_target(model)
    m = model if isinstance(model, Model) else None
    width = m.width if m is not None else model.in_width  # type: ignore[union-attr]
    states, _ = evaluate_ring(model, generic_input(seq_len, width))
    out = states[-1]
    if block is not None:
        if m is None:
            raise ValueError(f"block={block!r}: only a Model has blocks")
        out = out[..., m.stream.slice(block)]
    degrees = np.empty(out.shape, dtype=np.int64)
    for idx, p in np.ndenumerate(out):
        degrees[idx] = total_degree(p)
    return degrees
