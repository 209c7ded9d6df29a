"""Models: ops wired to named blocks of a residual stream.

A :class:`Layer` reads the concatenation of its ``reads`` blocks (in order), applies its op, and splits the output
(width = sum of the ``writes`` widths) over the ``writes`` blocks, adding it to them (``residual=True``) or replacing
them (``residual=False``). Blocks not written are carried unchanged. A :class:`Model` is a stream and a tuple of
layers, validated when built: every error names the layer index, its op and the problem.

A paper-style ``(N, L, d)`` BaseConv stack is ``Model.sequential(ops, d)``: one block ``"u"``, non-residual layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .op_base import Op, check_seq_len
from .readout import ArgmaxReadout
from .stream import Stream


def _names(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not hasattr(value, "__iter__"):
        raise TypeError(f"Layer.{what}={value!r}: must be a block name or a sequence of block names")
    names = tuple(value)  # type: ignore[arg-type]
    if not names:
        raise ValueError(f"Layer.{what}: needs at least one block name")
    for n in names:
        if not isinstance(n, str):
            raise ValueError(f"Layer.{what}: block name {n!r} must be a string")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"Layer.{what}: block {dup[0]!r} is named twice")
    return names


@dataclass(frozen=True, eq=False)
class Layer:
    op: Op
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    residual: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.op, ArgmaxReadout):
            raise ValueError("Layer.op: ArgmaxReadout is a readout, not a stream op; apply it to read(...) instead")
        if not isinstance(self.op, Op):
            raise ValueError(f"Layer.op: {self.op!r} is not an operator of mqarkit.polynomials")
        object.__setattr__(self, "reads", _names(self.reads, "reads"))
        object.__setattr__(self, "writes", _names(self.writes, "writes"))
        if not isinstance(self.residual, bool):
            raise ValueError(f"Layer.residual={self.residual!r}: must be a bool")


@dataclass(frozen=True, eq=False)
class Model:
    stream: Stream
    layers: tuple[Layer, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.stream, Stream):
            raise ValueError(f"Model.stream: {self.stream!r} is not a Stream")
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Model layer {i}: {layer!r} is not a Layer")
            where = f"Model{' ' + repr(self.name) if self.name else ''} layer {i} ({layer.op.label})"
            for n in layer.reads + layer.writes:
                if n not in self.stream:
                    raise ValueError(f"{where}: block {n!r} is not in the stream (blocks: {list(self.stream.names)})")
            in_w = sum(self.stream.block_width(n) for n in layer.reads)
            out_w = sum(self.stream.block_width(n) for n in layer.writes)
            if in_w != layer.op.in_width:
                raise ValueError(
                    f"{where}: reads {list(layer.reads)} of total width {in_w}, but the op takes in_width="
                    f"{layer.op.in_width}"
                )
            if out_w != layer.op.out_width:
                raise ValueError(
                    f"{where}: writes {list(layer.writes)} of total width {out_w}, but the op gives out_width="
                    f"{layer.op.out_width}"
                )

    @classmethod
    def sequential(cls, ops: Sequence[Op], width: int, name: str = "") -> Model:
        """A plain stack on one block ``"u"`` of ``width`` channels; each layer replaces the block."""
        stream = Stream.of(("u", width))
        return cls(stream, tuple(Layer(op, ("u",), ("u",), residual=False) for op in ops), name)

    @property
    def width(self) -> int:
        return self.stream.width

    def check(self, seq_len: int) -> None:
        """Raise ``ValueError`` (naming the layer) if some op cannot run on length ``seq_len``."""
        check_seq_len(seq_len)
        for i, layer in enumerate(self.layers):
            try:
                layer.op.check(seq_len)
            except ValueError as err:
                raise ValueError(f"Model{' ' + repr(self.name) if self.name else ''} layer {i}: {err}") from err
