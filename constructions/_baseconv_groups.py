"""The data-independent sign-code BaseConv construction (U4) stored per channel group, never as a ``d x d`` matrix.

Glossary (as :mod:`.baseconv_data_independent`): ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` =
``num_kv_pairs``, ``m = ⌈log2 c⌉`` the sign-code width, ``S = (s_0, .., s_{G-1}) = (2, 4, .., 2⌊(N-1)/2⌋)`` the lags
(``G = |S|`` groups), ``g = 2m`` the group width, ``d = g·G`` the stream width, ``G_s[i]`` the position gate of lag
``s`` (:func:`._baseconv_layout.lag_gate`).

Why the dense weights are block structured. :func:`.baseconv_data_independent.sign_weights` gives group ``j`` (lag
``s = s_j``) the channels ``[j·g, (j+1)·g)``: ``m`` equality channels then ``m`` value channels. Every weight either
acts inside one group or copies/sums across groups:

- embed ``(m, d)``: ``[I | I]`` in every group           -> one shared ``(m, g)`` block (a broadcast over groups);
- unembed ``(d, m)``: ``[0 ; I]`` in every group           -> one shared ``(g, m)`` block (a sum over groups);
- layer 1 ``W (d, d)``: block diagonal, block ``[[I, 0], [0, 0]]`` the same in every group -> one ``(g, g)``;
- layer 1 filters ``(N, d)``: channel ``q`` of group ``j`` has a single tap of value ``1`` at ``s_j`` (equality
  channels) or ``s_j - 1`` (value channels): the tap position is ``s_j - offset[q]`` with a shared ``offset (g,)``
  (``0`` / ``1``) and a shared value ``tap (g,)``, so the filters are the lags ``(G,)`` plus two ``(g,)`` vectors;
- layer 1 ``b1 (N, d)``: ``G_{s_j}[i]`` on the value channels, ``0`` on the equality channels, i.e.
  ``b1[i, j·g + q] = gate_channels[q] · G_{s_j}[i]``: a ``(g,)`` pattern times the gate, a formula in ``(N, D, s_j)``
  (:func:`group_gates`); the ``(G, N, g)`` array (870 MB in float32 at N = 4,096) is never stored;
- the ``⌈log2(m+1)⌉`` tree layers: :func:`._baseconv_sign_tree.place_groups` tiles one group's ``(W, h, b1, b2)``, so
  each is one shared ``ConvWeights`` of width ``g``.

So the whole model is ``O(g² · L + G)`` numbers (``L`` layers) instead of ``Θ(d² · L)``, and the evaluation runs every
group as a batch entry: since the embedding puts the same ``(N, g)`` block ``u0 = code @ E`` into every group,

    layer 1, group j:  y1_j[i, q] = (u0 @ W1 + gate_channels ⊙ G_{s_j})[i, q] · tap[q] · u0[i - (s_j - offset[q]), q]
    tree layer ℓ:      y_j = (y_j @ W_ℓ + b1_ℓ) ⊙ (Σ_k h_ℓ[k] ⊙ y_j[· - k] + b2_ℓ)
    out             =  (Σ_j y_j) @ U

(the shifted read is ``0`` where ``i < s_j - offset[q]``: causal, non-cyclic), which is (**) of
:mod:`.baseconv_data_independent` group by group. :func:`densify` rebuilds the dense ``StackWeights`` (the tests check
it equals ``sign_weights`` entry for entry) and :func:`grouped_output` is the NumPy grouped evaluation (the tests check
it equals the IR's output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqarkit.constructions._baseconv_layout import all_lags
from mqarkit.constructions._baseconv_mqar import check_mqar_sizes
from mqarkit.constructions._baseconv_reference import ConvWeights
from mqarkit.constructions._baseconv_sign_tree import place_groups, tree_group_layers
from mqarkit.constructions._baseconv_stack import StackWeights


@dataclass(frozen=True)
class GroupedFirstLayer:
    """Layer 1 of every group: shared ``weight (g, g)``; channel ``q`` of the group of lag ``s`` has the single filter
    tap ``tap[q]`` at position ``s - offset[q]`` and the linear bias ``gate_channels[q] · G_s[i]``; no conv bias."""

    weight: np.ndarray  # (g, g) float64
    tap: np.ndarray  # (g,) float64
    offset: np.ndarray  # (g,) int64, 0 <= offset < min(lags)
    gate_channels: np.ndarray  # (g,) float64


@dataclass(frozen=True)
class GroupedWeights:
    """The sign construction per group: ``embed (m, g)`` broadcast to every group, layer 1, the shared tree layers,
    ``unembed (g, m)`` summed over groups; ``lags (G,)`` one per group."""

    seq_len: int
    num_kv_pairs: int
    vocab_size: int
    lags: np.ndarray  # (G,) int64
    embed: np.ndarray  # (m, g)
    first: GroupedFirstLayer
    tree: tuple[ConvWeights, ...]  # each: weight (g, g), filters (K, g), bias_linear (g,), bias_conv (g,)
    unembed: np.ndarray  # (g, m)

    @property
    def code_width(self) -> int:
        return int(self.embed.shape[0])

    @property
    def group_width(self) -> int:
        return int(self.embed.shape[1])

    @property
    def groups(self) -> int:
        return int(self.lags.shape[0])

    @property
    def width(self) -> int:
        """``d = g·G``, the width of the dense stream this stands for."""
        return self.group_width * self.groups

    def stored_numbers(self) -> int:
        """Numbers this representation stores (weights, lags, tap offsets), to set against ``claimed`` parameters."""
        first = self.first
        arrays = [self.lags, self.embed, self.unembed, first.weight, first.tap, first.offset, first.gate_channels]
        for layer in self.tree:
            arrays += [layer.weight, layer.filters, layer.bias_linear, layer.bias_conv]
        return int(sum(np.asarray(a).size for a in arrays))


def group_gates(seq_len: int, num_kv_pairs: int, lags: np.ndarray) -> np.ndarray:
    """``(G, N)`` float64: row ``j`` is ``G_{lags[j]}`` (equal to ``lag_gate(N, D, lags[j])``), from the formula

    ``G_s[i] = 1[i >= 2D, i even] · 1[0 <= i - s < 2D, i - s even]``, vectorised over the lags."""
    lags = np.asarray(lags, dtype=np.int64)
    if lags.ndim != 1 or (lags < 1).any():
        raise ValueError(f"lags: must be a 1-d array of integers >= 1, got {lags!r}")
    i = np.arange(seq_len)[None, :]  # (1, N)
    p = i - lags[:, None]  # (G, N) the slot the lag reaches back to
    query = (i >= 2 * num_kv_pairs) & (i % 2 == 0)
    key = (p >= 0) & (p < 2 * num_kv_pairs) & (p % 2 == 0)
    return (query & key).astype(np.float64)


def group_weights(seq_len: int, num_kv_pairs: int, vocab_size: int) -> GroupedWeights:
    """The sign construction of ``sign_weights(seq_len, num_kv_pairs, vocab_size)`` per group (see the module doc)."""
    check_mqar_sizes(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs)
    m = max(1, (vocab_size - 1).bit_length())
    g = 2 * m
    eye = np.eye(m)
    eq, val = slice(0, m), slice(m, g)
    embed, unembed = np.zeros((m, g)), np.zeros((g, m))
    embed[:, eq], embed[:, val] = eye, eye
    unembed[val, :] = eye
    w1 = np.zeros((g, g))
    w1[eq, eq] = eye  # linear branch of the equality channels: a_k(x_i)
    tap = np.ones(g)  # equality: a_k(x_{i-s}) (offset 0); value: a_k'(x_{i-s+1}) (offset 1)
    offset = np.concatenate([np.zeros(m, dtype=np.int64), np.ones(m, dtype=np.int64)])
    gate_channels = np.concatenate([np.zeros(m), np.ones(m)])  # value channels carry G_s[i]
    tree = tuple(
        ConvWeights(weight=w, filters=h, bias_linear=b1, bias_conv=b2) for w, h, b1, b2 in tree_group_layers(m)
    )
    return GroupedWeights(
        seq_len=seq_len,
        num_kv_pairs=num_kv_pairs,
        vocab_size=vocab_size,
        lags=np.asarray(all_lags(seq_len), dtype=np.int64),
        embed=embed,
        first=GroupedFirstLayer(weight=w1, tap=tap, offset=offset, gate_channels=gate_channels),
        tree=tree,
        unembed=unembed,
    )


def densify(weights: GroupedWeights) -> StackWeights:
    """The dense ``StackWeights`` these grouped weights stand for (``d x d`` matrices: small sizes only)."""
    n, g, groups, d = weights.seq_len, weights.group_width, weights.groups, weights.width
    first = weights.first
    w1, h1, b1 = np.zeros((d, d)), np.zeros((n, d)), np.zeros((n, d))
    gates = group_gates(n, weights.num_kv_pairs, weights.lags)  # (G, N)
    for j, s in enumerate(weights.lags):
        cols = slice(j * g, (j + 1) * g)
        w1[cols, cols] = first.weight
        h1[int(s) - first.offset, np.arange(j * g, (j + 1) * g)] = first.tap
        b1[:, cols] = gates[j][:, None] * first.gate_channels[None, :]
    layers = [ConvWeights(weight=w1, filters=h1, bias_linear=b1, bias_conv=None)]
    for layer in weights.tree:
        layers.append(place_groups((layer.weight, layer.filters, layer.bias_linear, layer.bias_conv), groups))
    return StackWeights(
        embed=np.tile(weights.embed, (1, groups)), layers=layers, unembed=np.tile(weights.unembed, (groups, 1))
    )


def _causal_shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x (..., N, g)`` -> ``x[..., i - k, :]``, zero for ``i < k``."""
    out = np.zeros_like(x)
    if k < x.shape[-2]:
        out[..., k:, :] = x[..., : x.shape[-2] - k, :]
    return out


def first_layer_output(weights: GroupedWeights, u0: np.ndarray) -> np.ndarray:
    """Layer 1 for every group: ``u0 (n, N, g)`` (the embedded code, the same in every group) -> ``(n, G, N, g)``."""
    first, n = weights.first, u0.shape[-2]
    gates = group_gates(n, weights.num_kv_pairs, weights.lags)  # (G, N)
    lin = (u0 @ first.weight)[:, None] + gates[None, :, :, None] * first.gate_channels  # (n, G, N, g)
    shift = weights.lags[:, None] - first.offset[None, :]  # (G, g) the tap position of each channel
    i = np.arange(n)
    src = i[None, :, None] - shift[:, None, :]  # (G, N, g) the position each channel reads
    read = np.take_along_axis(u0[:, None], np.clip(src, 0, None)[None], axis=2)  # (n, G, N, g)
    conv = np.where(src[None] >= 0, read, 0.0) * first.tap
    return lin * conv


def tree_layer_output(layer: ConvWeights, x: np.ndarray) -> np.ndarray:
    """One shared layer on every group: ``x (..., N, g)`` -> ``(..., N, g)``, causal conv over the ``K`` taps."""
    conv = sum(layer.filters[k] * _causal_shift(x, k) for k in range(layer.filters.shape[0]))
    return (x @ layer.weight + layer.bias_linear) * (conv + layer.bias_conv)


def grouped_output(weights: GroupedWeights, code: np.ndarray) -> np.ndarray:
    """The model's ``out`` block, groups as a batch axis: ``code (n, N, m)`` or ``(N, m)`` -> same shape, float64."""
    code = np.asarray(code, dtype=np.float64)
    single = code.ndim == 2
    batch = code[None] if single else code
    if batch.ndim != 3 or batch.shape[1:] != (weights.seq_len, weights.code_width):
        raise ValueError(
            f"code: shape {code.shape} must be (n, N, m) with (N, m) = {(weights.seq_len, weights.code_width)}"
        )
    x = first_layer_output(weights, batch @ weights.embed)  # (n, G, N, g)
    for layer in weights.tree:
        x = tree_layer_output(layer, x)
    out = x.sum(axis=1) @ weights.unembed  # (n, N, m)
    return out[0] if single else out
