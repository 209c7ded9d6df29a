"""The sign-code lag lookup: for a set of lags ``S``, a BaseConv stack computing, at every query slot ``i``,

    out[i] = sum_{s in S} [i - s is a key slot] · EQ(a(x_i), a(x_{i-s})) · a(x_{i-s+1})                      (**)

and the argmax readout ``argmax_u <out[i], a(u)>``. Used by the data-independent construction (``S`` = every lag,
U4) and by the input-dependent one with ``encoding="sign"`` (``S`` chosen per input, U3).

Glossary (theory.md §1.3, §4.4): ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``,
``m = ⌈log2 c⌉``, ``a(x) ∈ {-1,+1}^m`` the sign code (``SignCode``), ``EQ(a, b) = Π_k (1 + a_k b_k)/2``, ``G_s`` the
position gate of lag ``s`` (:mod:`._baseconv_layout`), ``V[j] = 1[j < 2D, j odd]`` the value-slot flag,
``G = |S|`` the number of channel groups (``2m`` channels each: ``m`` equality, ``m`` value).

Two ways to keep "keys only" (erratum 6), a knob of the constructions (``gate``):

- ``"per_lag"`` (:func:`sign_lookup_weights`): the value channels of lag ``s`` carry ``b1 = G_s`` in layer 1 (the
  leaves), then the product tree of :mod:`._baseconv_sign_tree` with the value folded in. Depth ``1 + ⌈log2(m+1)⌉``.
  The gate is a position-dependent bias per lag: ``m·|supp G_s|`` non-zeros per lag, ``m·D·(N - 2D)/2`` in all when
  ``S`` is every lag: ``Θ(N·m·D)`` non-zeros, so Õ(N log c) only for polylogarithmic ``D``.
- ``"shared"`` (:func:`shared_gate_weights`): the gate is paid once. A shared block of ``m`` channels computes
  ``F[j] = V[j]·a(x_j)`` in layer 1 (``b1 = V``: ``m·D`` non-zeros in all, ``h = X^0``) while the equality channels
  form their leaves; layer 2 copies ``F`` into every group's value channels (``W``, ``b2 = 1``: ``2m`` per group)
  while the equality leaves take their first tree level; from layer 3 on the tree continues with the value node, which
  the conv branch reads at lag ``s - 1`` on its first use (``h = X^{s-1}``), i.e. ``F[i - s + 1]``. Since ``s`` is
  even, at an even ``i`` the flag ``V[i - s + 1]`` is ``1[i - s is a key slot]``: the output is (**) at every query
  slot, and ``0`` at odd ``i``; at a key slot ``i`` it sums ``EQ`` over earlier key slots, which is ``0`` because keys
  are distinct. Depth ``2 + ⌈log2(⌈m/2⌉ + 1)⌉`` (the value joins the tree one level late: ``+0`` or ``+1`` against
  per-lag), non-zeros ``G·O(m log m) + m·D``: Õ(N log c) for every ``D``.

Weights are stored dense (``StackWeights``: embed ``(m, d)``, BaseConv layers on ``d`` channels, unembed ``(d, m)``);
the non-zero counts below are exact (the tests compare them with the built weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mqarkit.constructions._baseconv_layout import lag_gate
from mqarkit.constructions._baseconv_onehot_lookup import check_lags
from mqarkit.constructions._baseconv_reference import ConvWeights
from mqarkit.constructions._baseconv_sign_tree import (
    Node,
    leaves,
    place_groups,
    tree_depth,
    tree_group_layers,
    tree_layer,
)
from mqarkit.constructions._baseconv_stack import StackWeights

GATES = ("per_lag", "shared")


def sign_width(vocab_size: int) -> int:
    """``m = ⌈log2 c⌉`` (at least 1), the width of ``SignCode(c)``."""
    return max(1, (vocab_size - 1).bit_length())


def sign_codebook(vocab_size: int) -> np.ndarray:
    """``(c, m)`` int64: row ``t`` = ``2·bits(t) - 1`` (little-endian bits), as ``mqarkit.polynomials.SignCode``."""
    m = sign_width(vocab_size)
    bits = (np.arange(vocab_size)[:, None] >> np.arange(m)) & 1
    return (2 * bits - 1).astype(np.int64)


def value_slots(seq_len: int, num_kv_pairs: int) -> np.ndarray:
    """``(N,)`` float64: ``V[j] = 1`` at the value slots ``j < 2D``, ``j`` odd."""
    j = np.arange(seq_len)
    return ((j < 2 * num_kv_pairs) & (j % 2 == 1)).astype(np.float64)


def gate_depth(m: int, gate: str) -> int:
    """BaseConv layers: ``1 + ⌈log2(m+1)⌉`` (per_lag) or ``2 + ⌈log2(⌈m/2⌉ + 1)⌉`` (shared)."""
    if gate == "per_lag":
        return 1 + tree_depth(m)
    return 2 + tree_depth((m + 1) // 2)  # ⌈log2(n + 1)⌉ = n.bit_length(): n = ⌈m/2⌉ equality nodes + the value


# --------------------------------------------------------------------------------------------------------------------
# per-lag gates


def sign_lookup_weights(seq_len: int, num_kv_pairs: int, vocab_size: int, lags: Sequence[int]) -> StackWeights:
    """(**) with per-lag gates: embed, layer 1 (leaves), ``⌈log2(m+1)⌉`` tree layers, unembed."""
    lags = check_lags(lags, seq_len)
    m, n = sign_width(vocab_size), seq_len
    g = 2 * m
    d = g * len(lags)
    eye = np.eye(m)
    embed, unembed = np.zeros((m, d)), np.zeros((d, m))
    w1, h1, b1 = np.zeros((d, d)), np.zeros((n, d)), np.zeros((n, d))
    for j, s in enumerate(lags):
        eq = slice(j * g, j * g + m)  # equality channels of lag s
        val = slice(j * g + m, (j + 1) * g)  # value channels of lag s
        embed[:, eq], embed[:, val] = eye, eye
        unembed[val, :] = eye
        w1[eq, eq] = eye  # linear branch: a_k(x_i)
        h1[s, eq] = 1.0  # conv branch: a_k(x_{i-s})          -> P_k
        h1[s - 1, val] = 1.0  # conv branch: a_k'(x_{i-s+1})
        b1[:, val] = lag_gate(n, num_kv_pairs, s)[:, None]  # linear branch: G_s[i]  -> V_k'
    layers = [ConvWeights(weight=w1, filters=h1, bias_linear=b1, bias_conv=None)]
    layers += [place_groups(group_layer, len(lags)) for group_layer in tree_group_layers(m)]
    return StackWeights(embed=embed, layers=layers, unembed=unembed)


def _tree_nonzeros(nodes: list[Node], m: int) -> tuple[int, list[Node]]:
    """Non-zero entries one tree layer of one group gives these nodes, and the nodes after it: for each pair ``(A,
    B)``: ``|B|`` entries in each of W and h, ``|B|`` in b1 if ``A`` is a raw leaf and ``|B|`` in b2 if ``B`` is; for
    a carried node ``|B|`` in b1 and h, ``|B|`` in b2 if raw (``|B|`` = 1 for an equality node, ``m`` for the value)."""
    count = 0
    for start in range(0, len(nodes), 2):
        pair = nodes[start : start + 2]
        if len(pair) == 1:
            size = len(pair[0].channels)
            count += 2 * size + (size if pair[0].raw else 0)
            continue
        a, b = sorted(pair, key=lambda node: node.vector)  # the vector node (if any) is B
        size = len(b.channels)
        count += 2 * size + (size if a.raw else 0) + (size if b.raw else 0)
    return count, tree_layer(nodes, m)[-1]


def sign_lookup_nonzeros(seq_len: int, num_kv_pairs: int, vocab_size: int, lags: Sequence[int]) -> int:
    """Exact non-zero entries of :func:`sign_lookup_weights`: per lag group embed ``2m``, unembed ``m``, layer 1 ``m``
    (W) + ``2m`` (filters) + the tree (:func:`_tree_nonzeros`), and ``m·|supp G_s|`` for the gate of lag ``s``."""
    lags = check_lags(lags, seq_len)
    m = sign_width(vocab_size)
    per_group = 2 * m + m + m + 2 * m
    nodes = leaves(m)
    while len(nodes) > 1:
        count, nodes = _tree_nonzeros(nodes, m)
        per_group += count
    support = sum(int(np.count_nonzero(lag_gate(seq_len, num_kv_pairs, s))) for s in lags)
    return len(lags) * per_group + m * support


def sign_lookup_parameters(seq_len: int, vocab_size: int, groups: int) -> int:
    """Stored (dense) entries of :func:`sign_lookup_weights` with ``groups`` lags, ``d = 2m·groups``:
    embed ``m·d`` + layer 1 ``(d² + N·d + N·d)`` + ``⌈log2(m+1)⌉·(d² + 3d)`` (tree: W, one tap, b1, b2) + unembed
    ``d·m``."""
    m = sign_width(vocab_size)
    d = 2 * m * groups
    return 2 * m * d + (d * d + 2 * seq_len * d) + tree_depth(m) * (d * d + 3 * d)


def sign_lookup_direct(tokens: np.ndarray, num_kv_pairs: int, vocab_size: int, lags: Sequence[int]) -> np.ndarray:
    """(**) with per-lag gates, ``G_s[i]·EQ·a(x_{i-s+1})``, from its definition: ``tokens`` (N,) -> (N, m) int64."""
    tokens = np.asarray(tokens)
    n = tokens.shape[0]
    code = sign_codebook(vocab_size)[tokens]  # (N, m)
    out = np.zeros_like(code)
    for s in check_lags(lags, n):
        gate = lag_gate(n, num_kv_pairs, s)
        for i in range(s, n):
            eq = int(np.prod((1 + code[i] * code[i - s]) // 2))
            out[i] += int(gate[i]) * eq * code[i - s + 1]
    return out


# --------------------------------------------------------------------------------------------------------------------
# one shared gate


def shared_gate_weights(seq_len: int, num_kv_pairs: int, vocab_size: int, lags: Sequence[int]) -> StackWeights:
    """(**) with one shared gate (module docstring): width ``d = 2m·G + m`` (the last ``m`` channels are ``F``)."""
    lags = check_lags(lags, seq_len)
    m, n, groups = sign_width(vocab_size), seq_len, len(lags)
    g = 2 * m
    d = g * groups + m
    shared = slice(g * groups, d)
    eye = np.eye(m)
    embed, unembed = np.zeros((m, d)), np.zeros((d, m))
    embed[:, shared] = eye
    # layer 1: equality leaves P_k in every group; F = V ⊙ a(x) in the shared block
    w1, h1, b1 = np.zeros((d, d)), np.zeros((n, d)), np.zeros((n, d))
    b1[:, shared] = value_slots(n, num_kv_pairs)[:, None]
    h1[0, shared] = 1.0
    for j, s in enumerate(lags):
        eq = slice(j * g, j * g + m)
        embed[:, eq] = eye
        unembed[j * g + m : (j + 1) * g, :] = eye
        w1[eq, eq] = eye
        h1[s, eq] = 1.0
    layers = [ConvWeights(weight=w1, filters=h1, bias_linear=b1, bias_conv=None)]
    # layer 2: first tree level on the equality leaves; the value channels copy F (W from the shared block, b2 = 1)
    eq_nodes = leaves(m)[:m]
    w2, h2, b12, b22, eq_nodes = tree_layer(eq_nodes, m)
    layer2 = place_groups((w2, h2, b12, b22), groups)
    weight2 = np.zeros((d, d))
    weight2[: g * groups, : g * groups] = layer2.weight
    filt2, bias_lin2, bias_conv2 = (np.concatenate([a, np.zeros((*a.shape[:-1], m))], axis=-1) for a in
                                    (layer2.filters, layer2.bias_linear, layer2.bias_conv))  # fmt: skip
    for j in range(groups):
        val = slice(j * g + m, (j + 1) * g)
        weight2[shared, val] = eye
        bias_conv2[val] = 1.0
    layers.append(ConvWeights(weight=weight2, filters=filt2, bias_linear=bias_lin2, bias_conv=bias_conv2))
    # layers 3..: the tree with the value node, read at lag s - 1 on its first use
    nodes = [*eq_nodes, leaves(m)[m]]
    first = True
    while len(nodes) > 1:
        w, h, bl, bc, nodes = tree_layer(nodes, m)
        placed = place_groups((w, h, bl, bc), groups)
        weight = np.zeros((d, d))
        weight[: g * groups, : g * groups] = placed.weight
        taps = n if first else 1
        filt = np.zeros((taps, d))
        filt[0, : g * groups] = placed.filters[0]
        if first:  # move each group's value taps from lag 0 to lag s - 1
            for j, s in enumerate(lags):
                val = slice(j * g + m, (j + 1) * g)
                filt[s - 1, val], filt[0, val] = filt[0, val], 0.0
        bias_lin = np.concatenate([placed.bias_linear, np.zeros(m)])
        bias_conv = np.concatenate([placed.bias_conv, np.zeros(m)])
        layers.append(ConvWeights(weight=weight, filters=filt, bias_linear=bias_lin, bias_conv=bias_conv))
        first = False
    if len(layers) != gate_depth(m, "shared") or not nodes[0].vector:
        raise AssertionError("shared gate: the tree must end in the value vector after 2 + ceil(log2(ceil(m/2)+1))")
    return StackWeights(embed=embed, layers=layers, unembed=unembed)


def shared_gate_nonzeros(seq_len: int, num_kv_pairs: int, vocab_size: int, lags: Sequence[int]) -> int:
    """Exact non-zero entries of :func:`shared_gate_weights`: the shared block ``m`` (embed) + ``m·D`` (the flags
    ``V``) + ``m`` (tap); per group embed ``m``, unembed ``m``, layer 1 ``2m``, the copy ``2m``, and the tree's
    entries (:func:`_tree_nonzeros`, the same count whether the value tap is at lag 0 or ``s - 1``)."""
    lags = check_lags(lags, seq_len)
    m = sign_width(vocab_size)
    per_group = m + m + 2 * m + 2 * m
    count, nodes = _tree_nonzeros(leaves(m)[:m], m)
    per_group += count
    nodes = [*nodes, leaves(m)[m]]
    while True:
        count, nodes = _tree_nonzeros(nodes, m)
        per_group += count
        if len(nodes) == 1:
            break
    return len(lags) * per_group + m + m * num_kv_pairs + m


def shared_gate_parameters(seq_len: int, vocab_size: int, groups: int) -> int:
    """Stored (dense) entries of :func:`shared_gate_weights`, ``d = 2m·groups + m``: embed and unembed ``2m·d``;
    layer 1 ``d² + 2N·d`` (W, filters of length N, position-dependent b1); layer 2 ``d² + 3d``; the first tree layer
    with the value ``d² + N·d + 2d`` (its filters hold the lags ``s - 1``); each later tree layer ``d² + 3d``."""
    m = sign_width(vocab_size)
    d = 2 * m * groups + m
    tree = gate_depth(m, "shared") - 2
    return (
        2 * m * d
        + (d * d + 2 * seq_len * d)
        + (d * d + 3 * d)
        + (d * d + seq_len * d + 2 * d)
        + (tree - 1) * (d * d + 3 * d)
    )


def shared_gate_direct(tokens: np.ndarray, num_kv_pairs: int, vocab_size: int, lags: Sequence[int]) -> np.ndarray:
    """What :func:`shared_gate_weights` computes, from its definition: ``sum_s EQ(a(x_i), a(x_{i-s}))·V[i-s+1]·
    a(x_{i-s+1})`` with reads before position 0 equal to 0 (so ``EQ = 2^-m`` there, times ``V = 0``).
    ``tokens`` (N,) -> (N, m) object array of Fractions (exact)."""
    from fractions import Fraction

    tokens = np.asarray(tokens)
    n = tokens.shape[0]
    code = sign_codebook(vocab_size)[tokens]  # (N, m)
    flags = value_slots(n, num_kv_pairs)
    out = np.full(code.shape, Fraction(0), dtype=object)
    for s in check_lags(lags, n):
        for i in range(n):
            if i - s + 1 < 0 or not flags[i - s + 1]:
                continue
            past = code[i - s] if i - s >= 0 else np.zeros(code.shape[1], dtype=np.int64)
            eq = Fraction(1)
            for a, b in zip(code[i], past):
                eq *= Fraction(1 + int(a) * int(b), 2)
            out[i] = out[i] + eq * code[i - s + 1]
    return out
