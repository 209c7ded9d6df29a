"""Sign-code equality by a product tree of BaseConv layers, with the value folded into the tree (theory.md §4.4).

Glossary: ``a(x) ∈ {-1,+1}^m`` the sign code of token ``x`` (``m = ⌈log2 c⌉``), ``P_k = a_k(x_i)·a_k(x_{i-s})``,
``f_k = (1 + P_k)/2 ∈ {0, 1}``, ``EQ = Π_k f_k`` (1 iff the codes agree in every bit), ``V_k' = G_s[i]·a_k'(x_{i-s+1})``
the gated value code of lag ``s``.

One channel group per lag ``s`` holds ``m`` *equality* channels and ``m`` *value* channels (``2m`` channels).

Layer 1 (leaves): equality channel ``k``: ``W = I`` (reads its own copy of ``a_k``), ``h = X^s``  ->  ``P_k``;
value channel ``k'``: ``W = 0``, ``b1 = G_s`` (position gate), ``h = X^{s-1}``  ->  ``V_k'``.

Tree layers: the ``m + 1`` nodes ``f_1 .. f_m, V`` (``V`` a vector node on the ``m`` value channels) are paired
neighbour with neighbour; a pair ``(A, B)`` becomes one node in ``B``'s channels through

    (α_A·A + β_A) ⊙ (α_B·B + β_B)      (linear branch: W[A -> B's channels] = α_A, b1 = β_A;
                                          conv branch: h = α_B·X^0, b2 = β_B on B's own channels)

with ``(α, β) = (1/2, 1/2)`` for a raw leaf ``P`` (so the factor is ``f = (1 + P)/2``) and ``(1, 0)`` for a node
already built. ``V`` always sits on the conv side: the conv branch is depthwise, so the vector must be in the channels
it multiplies, and the scalar factor is broadcast to all ``m`` of them by ``W``. An unpaired node is carried up with
``b1 = 1`` and its own ``(α, β)`` on the conv side. After ``⌈log2(m + 1)⌉`` tree layers one node is left:

    value channel k'  =  V_k' · Π_k f_k  =  G_s[i] · EQ(a(x_i), a(x_{i-s})) · a_k'(x_{i-s+1}).

Depth: ``1 + ⌈log2(m + 1)⌉ = ⌈log2(2m + 1)⌉`` BaseConv layers. The output polynomial is multilinear of degree
``2m + 1`` in distinct code bits, and ``L`` layers give degree ``<= 2^L``, so no BaseConv stack computing it is
shallower: the depth is optimal for this output. Against L2's bound ``log2(2m)`` (the equality alone): equal when ``m``
is not a
power of two (then ``2m + 1 <= 2^⌈log2 2m⌉``), one more when ``m`` is a power of two (the value factor pushes the
degree past ``2m = 2^(log2 m + 1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqarkit.constructions._baseconv_reference import ConvWeights

RAW = (0.5, 0.5)  # (α, β) of a leaf P: the factor (1 + P) / 2
BUILT = (1.0, 0.0)  # (α, β) of a node already built


@dataclass(frozen=True)
class Node:
    channels: tuple[int, ...]  # offsets inside the group: one equality channel, or the m value channels
    raw: bool
    vector: bool


def tree_depth(m: int) -> int:
    """Number of tree layers: ``⌈log2(m + 1)⌉`` (pairing halves the ``m + 1`` nodes, rounding up)."""
    return (m).bit_length()  # = ceil(log2(m + 1)) for m >= 1


def leaves(m: int) -> list[Node]:
    return [Node((k,), raw=True, vector=False) for k in range(m)] + [
        Node(tuple(range(m, 2 * m)), raw=False, vector=True)
    ]


def _coeffs(node: Node) -> tuple[float, float]:
    return RAW if node.raw else BUILT


def tree_layer(nodes: list[Node], m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Node]]:
    """One tree layer for one group of ``2m`` channels: ``(W (2m, 2m), h (1, 2m), b1 (2m,), b2 (2m,), new nodes)``.

    Channels that hold no node after the layer get all-zero weights (their output is 0 and never read)."""
    g = 2 * m
    w, h, b1, b2 = np.zeros((g, g)), np.zeros((1, g)), np.zeros(g), np.zeros(g)
    out: list[Node] = []
    for start in range(0, len(nodes), 2):
        pair = nodes[start : start + 2]
        if len(pair) == 1:  # carried up: b1 = 1, conv branch applies the node's own (α, β)
            (node,) = pair
            alpha, beta = _coeffs(node)
            for q in node.channels:
                b1[q], h[0, q], b2[q] = 1.0, alpha, beta
            out.append(Node(node.channels, raw=False, vector=node.vector))
            continue
        a, b = pair
        if a.vector:  # the vector node must be on the (depthwise) conv side
            a, b = b, a
        (src,) = a.channels
        alpha_a, beta_a = _coeffs(a)
        alpha_b, beta_b = _coeffs(b)
        for q in b.channels:
            w[src, q], b1[q] = alpha_a, beta_a
            h[0, q], b2[q] = alpha_b, beta_b
        out.append(Node(b.channels, raw=False, vector=b.vector))
    return w, h, b1, b2, out


def tree_group_layers(m: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The ``⌈log2(m+1)⌉`` tree layers of one group, each ``(W, h, b1, b2)`` on its ``2m`` channels."""
    nodes = leaves(m)
    layers = []
    while len(nodes) > 1:
        w, h, b1, b2, nodes = tree_layer(nodes, m)
        layers.append((w, h, b1, b2))
    if not nodes[0].vector or len(layers) != tree_depth(m):
        raise AssertionError("tree: the last node must be the value vector after ceil(log2(m+1)) layers")
    return layers


def place_groups(group_layer: tuple[np.ndarray, ...], groups: int) -> ConvWeights:
    """Repeat one group's tree layer over ``groups`` groups (block-diagonal ``W``, tiled filters and biases)."""
    w, h, b1, b2 = group_layer
    g = w.shape[0]
    d = g * groups
    big_w = np.zeros((d, d))
    for j in range(groups):
        big_w[j * g : (j + 1) * g, j * g : (j + 1) * g] = w
    return ConvWeights(
        weight=big_w, filters=np.tile(h, (1, groups)), bias_linear=np.tile(b1, groups), bias_conv=np.tile(b2, groups)
    )
