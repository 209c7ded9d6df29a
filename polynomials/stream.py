"""The residual stream: named blocks of channels laid side by side.

A stream of blocks ``(("token", 8), ("prev_token", 8))`` has width 16; block ``"token"`` occupies channels 0..7 and
``"prev_token"`` channels 8..15. A state of the stream is an array ``(..., N, width)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stream:
    blocks: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if isinstance(self.blocks, str) or not hasattr(self.blocks, "__iter__"):
            raise TypeError(f"Stream.blocks={self.blocks!r}: must be a sequence of (name, width) pairs")
        blocks = tuple(tuple(b) if isinstance(b, (tuple, list)) else (b,) for b in self.blocks)
        if not blocks:
            raise ValueError("Stream.blocks: needs at least one block")
        seen: set[str] = set()
        for i, block in enumerate(blocks):
            if len(block) != 2:
                raise ValueError(f"Stream.blocks[{i}]={block!r}: must be a (name, width) pair")
            name, width = block
            if not isinstance(name, str) or not name:
                raise ValueError(f"Stream.blocks[{i}]: name {name!r} must be a non-empty string")
            if name in seen:
                raise ValueError(f"Stream block {name!r}: duplicate block name (block {i})")
            if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
                raise ValueError(f"Stream block {name!r}: width={width!r} must be a positive int")
            seen.add(name)
        object.__setattr__(self, "blocks", blocks)
        offsets, start = {}, 0
        for name, width in blocks:
            offsets[name] = slice(start, start + width)
            start += width
        object.__setattr__(self, "_slices", offsets)

    @classmethod
    def of(cls, *blocks: tuple[str, int]) -> Stream:
        return cls(tuple(blocks))

    @property
    def width(self) -> int:
        return sum(w for _, w in self.blocks)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.blocks)

    def __contains__(self, name: object) -> bool:
        return name in self._slices

    def slice(self, name: str) -> slice:
        """Channels of block ``name`` as a slice of the stream's last axis."""
        if name not in self._slices:
            raise ValueError(f"block {name!r}: not in the stream (blocks: {list(self.names)})")
        return self._slices[name]

    def block_width(self, name: str) -> int:
        s = self.slice(name)
        return s.stop - s.start
