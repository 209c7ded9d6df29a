"""BaseConv primitives (theory.md §4.1, the corrected forms of [F]) as single BaseConv layers or short stacks.

Glossary ([Z] §4 / theory.md §2.1): a BaseConv layer maps ``u`` (N, d) to ``y = (u W + b1) ⊙ (h ∗ u + b2)`` with
``W`` (d, d), filters ``h`` (K, d) (one per channel: the convolution is *depthwise*), and position-dependent biases
``b1, b2`` (N, d). ``X^s`` ("impulse(s)") is the filter whose only non-zero tap is ``h[s] = 1``; causally,
``(X^s ∗ u)[i] = u[i - s]`` for ``i >= s`` and 0 before (sequence polynomials: ``X^s·u(X) mod X^N``).

Every builder takes ``channels`` (default: all ``d`` channels) and leaves the other channels unchanged through the
*pass-through* column ``W = 0, b1 = 1, h = X^0, b2 = 0``, which gives ``1·u[i, q]``. The table:

| primitive | W | h | b1 | b2 | result on the chosen channels |
|---|---|---|---|---|---|
| ``linear_map`` | W | 0 | 0 | 1 | ``u W`` |
| ``channel_conv`` | 0 | h | 1 | 0 | ``h ∗ u`` |
| ``position_mask`` | 0 | X^0 | F | 0 | ``F ⊙ u`` |
| ``shift_down`` | 0 | X^s | 1 | 0 | ``u[i - s]``, zero-filled (erratum 3: ``X^s``, not ``X^(s+1)``) |
| ``shift_up`` (cyclic) | 0 | X^(N-s) | ``1[i + s < N]`` | 0 | ``u[i + s]``, zero-filled (erratum 4) |
| ``product`` a, b → b | ``W[a, b] = 1`` | X^0 on b | 0 | 0 | ``u_a · u_b`` (lands in b: the conv branch of b reads b) |
| ``constant`` r | 0 | 0 | r | 1 | ``r`` |
| ``sum_channels`` a + b → o | ``W[a, o] = W[b, o] = 1`` | 0 | 0 | 1 | ``u_a + u_b`` |
| ``block_add`` (2 layers) | 0; 0 | ``1 + X^s``; X^0 | ``1[s <= i < 2s]``; 1 | 0; ``1[i < s]`` | see below |
| ``cumulative_sum`` | 0 | all-ones (K = N) | 1 | 0 | ``sum_{k <= i} u[k]`` |

Derivations. *Shift up*: the cyclic convolution with ``X^(N-s)`` gives ``u[(i - (N - s)) mod N] = u[(i + s) mod N]``;
for ``i + s >= N`` this wraps to ``u[i + s - N]``, which the gate ``b1 = 1[i + s < N]`` zeroes: one layer, not three.
*Block add*: layer 1 gives ``1[s <= i < 2s]·(u[i] + u[i - s])`` (the ``X^s`` tap reads ``u[i - s]``, defined since
``i >= s``); layer 2 multiplies by 1 and adds ``1[i < s]``: so ``1`` on ``[0, s)``, ``u[i] + u[i - s]`` on ``[s, 2s)``,
``0`` from ``2s`` on. *Cumulative sum*: ``sum_{k <= i} 1·u[i - k] = sum_{j <= i} u[j]``.

:data:`PRIMITIVES` lists ``(name, builder, intended, example_params)`` for the claim registry: ``builder(N, d, **p)``
returns the op (or 2-layer model), ``intended(u, **p)`` the intended output for a symbolic ``u`` (N, d) object array,
and ``example_params(N, d)`` the parameter sets the checks sweep at that size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mqarkit.constructions._baseconv_ir import as_model, as_op
from mqarkit.constructions._baseconv_reference import ConvWeights

# --------------------------------------------------------------------------------------------------------------------
# argument checks


def _check_sizes(seq_len: int, width: int) -> None:
    for name, value in (("seq_len", seq_len), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}={value!r}: must be an int")
        if value < 1:
            raise ValueError(f"{name}={value}: must be >= 1")


def _check_channel(name: str, channel: int, width: int) -> int:
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < width:
        raise ValueError(f"{name}={channel!r}: must be a channel index in [0, width={width})")
    return int(channel)


def _channels(channels: Sequence[int] | None, width: int) -> list[int]:
    if channels is None:
        return list(range(width))
    chosen = [_check_channel("channels", c, width) for c in channels]
    if len(set(chosen)) != len(chosen) or not chosen:
        raise ValueError(f"channels={list(channels)!r}: must be a non-empty list of distinct channel indices")
    return chosen


def _check_shift(shift: int, seq_len: int) -> int:
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or not 0 <= shift < seq_len:
        raise ValueError(f"shift={shift!r}: must be an int with 0 <= shift < seq_len={seq_len}")
    return int(shift)


# --------------------------------------------------------------------------------------------------------------------
# weights (ConvWeights): the pass-through template and the primitives


def passthrough_weights(seq_len: int, width: int, taps: int = 1, cyclic: bool = False) -> ConvWeights:
    """``W = 0, b1 = 1, h = X^0, b2 = 0`` on every channel: ``y = 1·u`` (the identity as a BaseConv layer)."""
    filters = np.zeros((taps, width))
    filters[0, :] = 1.0
    return ConvWeights(
        weight=np.zeros((width, width)),
        filters=filters,
        bias_linear=np.ones((seq_len, width)),
        bias_conv=np.zeros((seq_len, width)),
        cyclic=cyclic,
    )


def _clear(w: ConvWeights, q: int) -> None:
    w.weight[:, q] = 0.0
    w.filters[:, q] = 0.0
    w.bias_linear[:, q] = 0.0
    w.bias_conv[:, q] = 0.0


def shift_down_weights(seq_len: int, width: int, shift: int, channels: Sequence[int] | None = None) -> ConvWeights:
    _check_sizes(seq_len, width)
    shift = _check_shift(shift, seq_len)
    w = passthrough_weights(seq_len, width, taps=shift + 1)
    for q in _channels(channels, width):
        _clear(w, q)
        w.filters[shift, q] = 1.0
        w.bias_linear[:, q] = 1.0
    return w


def shift_up_weights(seq_len: int, width: int, shift: int, channels: Sequence[int] | None = None) -> ConvWeights:
    _check_sizes(seq_len, width)
    shift = _check_shift(shift, seq_len)
    w = passthrough_weights(seq_len, width, taps=seq_len, cyclic=True)
    i = np.arange(seq_len)
    for q in _channels(channels, width):
        _clear(w, q)
        w.filters[(seq_len - shift) % seq_len, q] = 1.0
        w.bias_linear[:, q] = (i + shift < seq_len).astype(np.float64)
    return w


def position_mask_weights(
    seq_len: int, width: int, mask: np.ndarray, channels: Sequence[int] | None = None
) -> ConvWeights:
    """``mask`` (N,) or (N, d): the gate ``F``; on the chosen channels ``y = F ⊙ u``."""
    _check_sizes(seq_len, width)
    mask = np.asarray(mask, dtype=np.float64)
    if mask.shape not in ((seq_len,), (seq_len, width)):
        raise ValueError(f"mask: shape {mask.shape} must be (seq_len,) = ({seq_len},) or (seq_len, width)")
    full = np.broadcast_to(mask[:, None] if mask.ndim == 1 else mask, (seq_len, width))
    w = passthrough_weights(seq_len, width)
    for q in _channels(channels, width):
        _clear(w, q)
        w.filters[0, q] = 1.0
        w.bias_linear[:, q] = full[:, q]
    return w


def product_weights(seq_len: int, width: int, a: int, b: int) -> ConvWeights:
    """Channel ``b`` becomes ``u_a · u_b`` (linear branch copies ``a`` into ``b``; conv branch of ``b`` is ``X^0``)."""
    _check_sizes(seq_len, width)
    a, b = _check_channel("a", a, width), _check_channel("b", b, width)
    w = passthrough_weights(seq_len, width)
    _clear(w, b)
    w.weight[a, b] = 1.0
    w.filters[0, b] = 1.0
    return w


def constant_weights(seq_len: int, width: int, value: float, channel: int) -> ConvWeights:
    _check_sizes(seq_len, width)
    channel = _check_channel("channel", channel, width)
    w = passthrough_weights(seq_len, width)
    _clear(w, channel)
    w.bias_linear[:, channel] = value
    w.bias_conv[:, channel] = 1.0
    return w


def sum_channels_weights(seq_len: int, width: int, a: int, b: int, out: int) -> ConvWeights:
    _check_sizes(seq_len, width)
    a, b, out = (_check_channel(n, c, width) for n, c in (("a", a), ("b", b), ("out", out)))
    if a == b:
        raise ValueError(f"a={a}, b={b}: must be distinct channels (use linear_map for 2·u_a)")
    w = passthrough_weights(seq_len, width)
    _clear(w, out)
    w.weight[a, out] = 1.0
    w.weight[b, out] = 1.0
    w.bias_conv[:, out] = 1.0
    return w


def linear_map_weights(seq_len: int, weight: np.ndarray) -> ConvWeights:
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 2 or weight.shape[0] != weight.shape[1]:
        raise ValueError(f"weight: shape {weight.shape} must be square (d, d)")
    _check_sizes(seq_len, weight.shape[0])
    d = weight.shape[0]
    return ConvWeights(
        weight=weight.copy(),
        filters=np.zeros((1, d)),
        bias_linear=np.zeros((seq_len, d)),
        bias_conv=np.ones((seq_len, d)),
    )


def channel_conv_weights(seq_len: int, filters: np.ndarray) -> ConvWeights:
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim != 2 or not 1 <= filters.shape[0] <= seq_len:
        raise ValueError(f"filters: shape {filters.shape} must be (K, d) with 1 <= K <= seq_len={seq_len}")
    _check_sizes(seq_len, filters.shape[1])
    d = filters.shape[1]
    return ConvWeights(
        weight=np.zeros((d, d)),
        filters=filters.copy(),
        bias_linear=np.ones((seq_len, d)),
        bias_conv=np.zeros((seq_len, d)),
    )


def cumulative_sum_weights(seq_len: int, width: int, channels: Sequence[int] | None = None) -> ConvWeights:
    _check_sizes(seq_len, width)
    w = passthrough_weights(seq_len, width, taps=seq_len)
    for q in _channels(channels, width):
        _clear(w, q)
        w.filters[:, q] = 1.0
        w.bias_linear[:, q] = 1.0
    return w


def block_add_weights(seq_len: int, width: int, shift: int, channels: Sequence[int] | None = None) -> list[ConvWeights]:
    """Two layers: ``1`` on ``[0, s)``, ``u[i] + u[i - s]`` on ``[s, 2s)``, ``0`` after (chosen channels)."""
    _check_sizes(seq_len, width)
    shift = _check_shift(shift, seq_len)
    if shift < 1:
        raise ValueError(f"shift={shift}: block_add needs shift >= 1")
    chosen = _channels(channels, width)
    i = np.arange(seq_len)
    first = passthrough_weights(seq_len, width, taps=shift + 1)
    second = passthrough_weights(seq_len, width)
    for q in chosen:
        _clear(first, q)
        first.filters[0, q] = 1.0
        first.filters[shift, q] = 1.0
        first.bias_linear[:, q] = ((shift <= i) & (i < 2 * shift)).astype(np.float64)
        second.bias_conv[:, q] = (i < shift).astype(np.float64)
    return [first, second]


# --------------------------------------------------------------------------------------------------------------------
# public builders: IR ops / models


def shift_down(seq_len: int, width: int, shift: int, channels: Sequence[int] | None = None) -> Any:
    """BaseConv op: ``y[i, q] = u[i - s, q]`` (0 for ``i < s``) on ``channels``, identity elsewhere."""
    return as_op(shift_down_weights(seq_len, width, shift, channels))


def shift_up(seq_len: int, width: int, shift: int, channels: Sequence[int] | None = None) -> Any:
    """Cyclic BaseConv op: ``y[i, q] = u[i + s, q]`` (0 for ``i + s >= N``) on ``channels``, identity elsewhere."""
    return as_op(shift_up_weights(seq_len, width, shift, channels))


def position_mask(seq_len: int, width: int, mask: np.ndarray, channels: Sequence[int] | None = None) -> Any:
    """BaseConv op: ``y = F ⊙ u`` on ``channels``."""
    return as_op(position_mask_weights(seq_len, width, mask, channels))


def product(seq_len: int, width: int, a: int, b: int) -> Any:
    """BaseConv op: channel ``b`` becomes ``u_a · u_b``."""
    return as_op(product_weights(seq_len, width, a, b))


def constant(seq_len: int, width: int, value: float, channel: int) -> Any:
    """BaseConv op: channel ``channel`` becomes the constant ``value``."""
    return as_op(constant_weights(seq_len, width, value, channel))


def sum_channels(seq_len: int, width: int, a: int, b: int, out: int) -> Any:
    """BaseConv op: channel ``out`` becomes ``u_a + u_b``."""
    return as_op(sum_channels_weights(seq_len, width, a, b, out))


def linear_map(seq_len: int, weight: np.ndarray) -> Any:
    """BaseConv op: ``y = u W``."""
    return as_op(linear_map_weights(seq_len, weight))


def channel_conv(seq_len: int, filters: np.ndarray) -> Any:
    """BaseConv op: ``y = h ∗ u`` (causal, depthwise)."""
    return as_op(channel_conv_weights(seq_len, filters))


def cumulative_sum(seq_len: int, width: int, channels: Sequence[int] | None = None) -> Any:
    """BaseConv op: ``y[i, q] = sum_{k <= i} u[k, q]`` on ``channels``."""
    return as_op(cumulative_sum_weights(seq_len, width, channels))


def block_add(seq_len: int, width: int, shift: int, channels: Sequence[int] | None = None) -> Any:
    """Two-layer BaseConv model (see the module docstring)."""
    return as_model(block_add_weights(seq_len, width, shift, channels))


# --------------------------------------------------------------------------------------------------------------------
# intended polynomials: u (N, d) object array -> (N, d) object array


def _copy(u: np.ndarray) -> np.ndarray:
    return np.array(u, dtype=object)


def _chosen(u: np.ndarray, channels: Sequence[int] | None) -> list[int]:
    return list(range(u.shape[1])) if channels is None else list(channels)


def intended_shift_down(u: np.ndarray, shift: int, channels: Sequence[int] | None = None) -> np.ndarray:
    y = _copy(u)
    for q in _chosen(u, channels):
        y[:, q] = [u[i - shift, q] if i >= shift else 0 for i in range(u.shape[0])]
    return y


def intended_shift_up(u: np.ndarray, shift: int, channels: Sequence[int] | None = None) -> np.ndarray:
    n = u.shape[0]
    y = _copy(u)
    for q in _chosen(u, channels):
        y[:, q] = [u[i + shift, q] if i + shift < n else 0 for i in range(n)]
    return y


def intended_position_mask(u: np.ndarray, mask: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
    mask = np.asarray(mask)
    y = _copy(u)
    for q in _chosen(u, channels):
        y[:, q] = [(mask[i] if mask.ndim == 1 else mask[i, q]) * u[i, q] for i in range(u.shape[0])]
    return y


def intended_product(u: np.ndarray, a: int, b: int) -> np.ndarray:
    y = _copy(u)
    y[:, b] = u[:, a] * u[:, b]
    return y


def intended_constant(u: np.ndarray, value: float, channel: int) -> np.ndarray:
    y = _copy(u)
    y[:, channel] = value
    return y


def intended_sum_channels(u: np.ndarray, a: int, b: int, out: int) -> np.ndarray:
    y = _copy(u)
    y[:, out] = u[:, a] + u[:, b]
    return y


def intended_cumulative_sum(u: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
    y = _copy(u)
    for q in _chosen(u, channels):
        y[:, q] = [sum(u[: i + 1, q]) for i in range(u.shape[0])]
    return y


def intended_block_add(u: np.ndarray, shift: int, channels: Sequence[int] | None = None) -> np.ndarray:
    y = _copy(u)
    for q in _chosen(u, channels):
        y[:, q] = [1 if i < shift else (u[i, q] + u[i - shift, q] if i < 2 * shift else 0) for i in range(u.shape[0])]
    return y


# --------------------------------------------------------------------------------------------------------------------
# the list handed to the claim registry


@dataclass(frozen=True)
class Primitive:
    """One primitive: ``builder(N, d, **p)`` (IR op or model), ``weights(N, d, **p)`` (list of ConvWeights),
    ``intended(u, **p)`` and ``example_params(N, d)`` (the parameter sets a check sweeps at size (N, d))."""

    name: str
    builder: Callable[..., Any]
    weights: Callable[..., list[ConvWeights]]
    intended: Callable[..., np.ndarray]
    example_params: Callable[[int, int], list[dict[str, Any]]]


def _one(fn: Callable[..., ConvWeights]) -> Callable[..., list[ConvWeights]]:
    return lambda n, d, **p: [fn(n, d, **p)]


def _shifts(n: int, d: int) -> list[dict[str, Any]]:
    sub = [0] if d == 1 else [0, d - 1]
    return [{"shift": s} for s in range(n)] + [{"shift": min(1, n - 1), "channels": sub}]


def _masks(n: int, d: int) -> list[dict[str, Any]]:
    i = np.arange(n)
    return [{"mask": (i % 2 == 0).astype(float)}, {"mask": (i >= n // 2).astype(float) * 3.0, "channels": [d - 1]}]


def _pairs(n: int, d: int) -> list[dict[str, Any]]:
    return [{"a": 0, "b": d - 1}, {"a": d - 1, "b": 0}, {"a": 0, "b": 0}]


def _sums(n: int, d: int) -> list[dict[str, Any]]:
    return [] if d < 2 else [{"a": 0, "b": 1, "out": d - 1}, {"a": 0, "b": d - 1, "out": 0}]


PRIMITIVES: list[Primitive] = [
    Primitive("shift_down", shift_down, _one(shift_down_weights), intended_shift_down, _shifts),
    Primitive("shift_up", shift_up, _one(shift_up_weights), intended_shift_up, _shifts),
    Primitive("position_mask", position_mask, _one(position_mask_weights), intended_position_mask, _masks),
    Primitive("product", product, _one(product_weights), intended_product, _pairs),
    Primitive(
        "constant",
        constant,
        _one(constant_weights),
        intended_constant,
        lambda n, d: [{"value": 3, "channel": 0}, {"value": -2, "channel": d - 1}],
    ),
    Primitive("sum_channels", sum_channels, _one(sum_channels_weights), intended_sum_channels, _sums),
    Primitive(
        "cumulative_sum",
        cumulative_sum,
        _one(cumulative_sum_weights),
        intended_cumulative_sum,
        lambda n, d: [{}, {"channels": [d - 1]}],
    ),
    Primitive(
        "block_add",
        block_add,
        block_add_weights,
        intended_block_add,
        lambda n, d: [{"shift": s} for s in range(1, n)] + ([{"shift": n // 2, "channels": [0]}] if n >= 2 else []),
    ),
]
