"""Data-independent BaseConv solving MQAR with fixed filters ([Z] Thm 4.4, statement; construction ours, U4).

Glossary ([Z], theory.md §1.1, §4.4): ``c`` = ``vocab_size``, ``N`` = ``seq_len`` (raw tokens), ``D`` =
``num_kv_pairs``, ``m = ⌈log2 c⌉`` the sign-code width, ``a(x) ∈ {-1,+1}^m`` the sign code (``SignCode``), ``e(x)`` the
one-hot code,
``S = {2, 4, .., 2⌊(N-1)/2⌋}`` every distance at which a query slot can meet a key slot (``|S| = ⌊(N-1)/2⌋``),
``G_s`` the position gate of lag ``s`` (:mod:`._baseconv_layout`), ``EQ(a, b) = Π_k (1 + a_k b_k)/2``.

The model computes, at every position ``i`` and with weights that depend only on ``(c, N, D)``,

    out[i] = sum_{s in S} G_s[i] · EQ(code(x_i), code(x_{i-s})) · code(x_{i-s+1})                         (**)

and the readout is ``argmax_u <out[i], code(u)>``. At a query slot ``i`` for the key at slot ``p`` (keys distinct),
the only key slot with the same code is ``p``, so ``out[i] = code(x_{p+1}) = code(value)``; ``<code(v), code(u)>`` is
``m`` (sign) or ``1`` (one-hot) for ``u = v`` and strictly smaller otherwise, so the argmax is the value. This holds for
every instance of the layout, whatever the filler (the gates only ever compare a query slot with key slots), so the
construction is exact on ``zero``, ``random`` and ``clean`` filler alike.

``encoding="sign"`` (default): one group of ``2m`` channels per lag (``d = 2m·|S|``), the equality product tree of
:mod:`._baseconv_sign_tree` with the value folded in: ``1 + ⌈log2(m+1)⌉`` BaseConv layers, degree ``2m + 1``.
``encoding="onehot"``: the one-hot lookup of :mod:`._baseconv_onehot_lookup` over every lag: ``d = 2c·|S|``, 2 layers,
degree 3 (one-hot equality is the degree-2 inner product ``<e(x), e(y)>``).

Resources (stream blocks ``token`` (w), ``work`` (d), ``out`` (w); ``w = m`` or ``c``; every weight stored dense, the
policy of ``mqarkit.polynomials``): sign,

    parameters = m·d (embed) + [d² + N·d + N·d] (layer 1: W, filters of length N, position-dependent b1)
                 + ⌈log2(m+1)⌉·[d² + 3d] (tree: W, one tap, b1 and b2 per channel) + d·m (unembed),
    state      = (N - 1)·d (the length-N filters of layer 1; one-tap layers carry nothing).

Dense storage makes this ``Θ(N² m²)`` (erratum 9: a dense ``W`` costs ``d²``); the weights are sparse, and
:func:`claimed_nonzero_parameters` gives the exact number of non-zero entries, ``Θ(N·m·(D + log m))`` — Õ(N log c) for
``D = O(1)`` up to the gate term ``m·D·(N - 2D)/2`` (the position-dependent gate biases, one entry per (key slot, query
slot) pair and value channel).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._baseconv_layout import all_lags, lag_gate
from mqarkit.constructions._baseconv_mqar import check_mqar_sizes
from mqarkit.constructions._baseconv_onehot_lookup import (
    onehot_lookup_direct,
    onehot_lookup_nonzeros,
    onehot_lookup_parameters,
    onehot_lookup_weights,
)
from mqarkit.constructions._baseconv_reference import ConvWeights
from mqarkit.constructions._baseconv_sign_tree import leaves, place_groups, tree_depth, tree_group_layers, tree_layer
from mqarkit.constructions._baseconv_stack import (
    StackWeights,
    argmax_predict,
    as_ir_model,
    measured_resources,
    nonzero_parameters,
    run_ir_model,
)
from mqarkit.constructions.api import Construction, Resources, register

ENCODINGS = ("sign", "onehot")


def sign_width(vocab_size: int) -> int:
    """``m = ⌈log2 c⌉`` (at least 1), the width of ``SignCode(c)``."""
    return max(1, (vocab_size - 1).bit_length())


def sign_codebook(vocab_size: int) -> np.ndarray:
    """``(c, m)`` int64: row ``t`` = ``2·bits(t) - 1`` (little-endian bits), as ``mqarkit.polynomials.SignCode``."""
    m = sign_width(vocab_size)
    bits = (np.arange(vocab_size)[:, None] >> np.arange(m)) & 1
    return (2 * bits - 1).astype(np.int64)


# --------------------------------------------------------------------------------------------------------------------
# weights


def sign_weights(seq_len: int, num_kv_pairs: int, vocab_size: int) -> StackWeights:
    """The sign-code construction: embed, layer 1 (leaves), ``⌈log2(m+1)⌉`` tree layers, unembed."""
    m, lags, n = sign_width(vocab_size), all_lags(seq_len), seq_len
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


def construction_weights(seq_len: int, num_kv_pairs: int, vocab_size: int, encoding: str) -> StackWeights:
    if encoding == "sign":
        return sign_weights(seq_len, num_kv_pairs, vocab_size)
    return onehot_lookup_weights(seq_len, num_kv_pairs, vocab_size, all_lags(seq_len))


# --------------------------------------------------------------------------------------------------------------------
# the direct oracle and the intended polynomial


def direct_output(tokens: np.ndarray, num_kv_pairs: int, vocab_size: int, encoding: str = "sign") -> np.ndarray:
    """(**) evaluated from its definition, without BaseConv: ``tokens`` (N,) int -> (N, w) int64."""
    tokens = np.asarray(tokens)
    n = tokens.shape[0]
    if encoding == "onehot":
        return onehot_lookup_direct(tokens, num_kv_pairs, vocab_size, all_lags(n))
    code = sign_codebook(vocab_size)[tokens]  # (N, m)
    out = np.zeros_like(code)
    for s in all_lags(n):
        gate = lag_gate(n, num_kv_pairs, s)
        for i in range(s, n):
            eq = int(np.prod((1 + code[i] * code[i - s]) // 2))
            out[i] += int(gate[i]) * eq * code[i - s + 1]
    return out


def intended_polynomial(code: np.ndarray, num_kv_pairs: int) -> np.ndarray:
    """(**) for a symbolic sign code ``code`` (N, m) object array: ``(N, m)`` object array of expressions."""
    n, m = code.shape
    out = np.zeros((n, m), dtype=object)
    for s in all_lags(n):
        gate = lag_gate(n, num_kv_pairs, s)
        for i in range(s, n):
            if gate[i]:
                eq = 1
                for k in range(m):
                    eq = eq * (1 + code[i, k] * code[i - s, k]) / 2
                out[i] = out[i] + eq * code[i - s + 1]
    return out


# --------------------------------------------------------------------------------------------------------------------
# claimed resources


def claimed_nonzero_parameters(seq_len: int, num_kv_pairs: int, vocab_size: int, encoding: str = "sign") -> int:
    """Exact number of non-zero weight entries.

    sign, per lag group (``|S|`` of them): embed ``2m``, unembed ``m``, layer 1 ``m`` (W) + ``2m`` (filters); the gate
    biases add ``m`` per (key slot, query slot) pair, ``m·D·(N - 2D)/2`` in all (every such pair has its lag in S);
    the tree adds, per group, for each pair of nodes ``(A, B)``: ``|B|`` entries in each of W and h, ``|B|`` in b1 if
    ``A`` is a raw leaf and ``|B|`` in b2 if ``B`` is; for a carried node ``|B|`` in b1 and h, ``|B|`` in b2 if raw
    (``|B|`` = 1 for an equality node, ``m`` for the value vector)."""
    n, d_pairs = seq_len, num_kv_pairs * (seq_len - 2 * num_kv_pairs) // 2
    groups = len(all_lags(n))
    if encoding == "onehot":
        return onehot_lookup_nonzeros(n, num_kv_pairs, vocab_size, all_lags(n))
    m = sign_width(vocab_size)
    per_group = 2 * m + m + m + 2 * m
    nodes = leaves(m)
    while len(nodes) > 1:
        for start in range(0, len(nodes), 2):
            pair = nodes[start : start + 2]
            if len(pair) == 1:
                size = len(pair[0].channels)
                per_group += 2 * size + (size if pair[0].raw else 0)
                continue
            a, b = sorted(pair, key=lambda node: node.vector)  # the vector node (if any) is B
            size = len(b.channels)
            per_group += 2 * size + (size if a.raw else 0) + (size if b.raw else 0)
        nodes = tree_layer(nodes, m)[-1]
    return groups * per_group + m * d_pairs


def claimed(seq_len: int, num_kv_pairs: int, vocab_size: int, encoding: str) -> Resources:
    """Closed-form resources (see the module docstring); width = stream width ``2w + d``."""
    n, groups = seq_len, len(all_lags(seq_len))
    if encoding == "onehot":
        w, d = vocab_size, 2 * vocab_size * groups
        parameters = onehot_lookup_parameters(n, vocab_size, groups)
        return Resources(
            layers=2,
            width=2 * w + d,
            parameters=parameters,
            state_numbers=(n - 1) * d,
            degree=3,
            nonzero_parameters=claimed_nonzero_parameters(n, num_kv_pairs, vocab_size, encoding),
        )
    m = sign_width(vocab_size)
    d, depth = 2 * m * groups, tree_depth(m)
    parameters = 2 * m * d + (d * d + 2 * n * d) + depth * (d * d + 3 * d)
    return Resources(
        layers=1 + depth,
        width=2 * m + d,
        parameters=parameters,
        state_numbers=(n - 1) * d,
        degree=2 * m + 1,
        nonzero_parameters=claimed_nonzero_parameters(n, num_kv_pairs, vocab_size, encoding),
    )


# --------------------------------------------------------------------------------------------------------------------
# the registered construction


@register
class BaseConvDataIndependent(Construction):
    """Fixed-filter BaseConv MQAR: all lags in parallel; equality by a product tree (sign) or inner product
    (one-hot)."""

    name = "baseconv_data_independent"
    claim_ids: ClassVar[tuple[str, ...]] = ("U4", "L2")
    exact_backends: ClassVar[tuple[str, ...]] = ("float64", "exact")

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - {"encoding"})
        if unknown:
            raise ValueError(f"knobs {unknown}: unknown for {cls.name!r}; the only knob is encoding in {ENCODINGS}")
        encoding = knobs.get("encoding", "sign")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding={encoding!r}: must be one of {ENCODINGS}")
        check_mqar_sizes(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs)

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        return claimed(seq_len, num_kv_pairs, vocab_size, knobs.get("encoding", "sign"))

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "every instance of the raw-token layout (any filler: zero, random, clean) with N even, 4D <= N, "
            "D <= c//2 - 1, c > N (the MQARSpec rules), one pass; exact in every backend"
        )

    @property
    def encoding(self) -> str:
        return self.knobs.get("encoding", "sign")

    def codebook(self) -> np.ndarray:
        return sign_codebook(self.vocab_size) if self.encoding == "sign" else np.eye(self.vocab_size, dtype=np.int64)

    def weights(self) -> StackWeights:
        return construction_weights(self.seq_len, self.num_kv_pairs, self.vocab_size, self.encoding)

    def _build_model(self) -> Any:
        return as_ir_model(self.weights(), self.name)

    def output(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        """``inputs`` (n, N) int -> (n, N, w): the model's ``out`` block (before the argmax readout), via the IR."""
        return run_ir_model(self.model, self.codebook()[np.asarray(inputs)], backend)

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        return argmax_predict(self.output(inputs, backend), self.codebook(), backend)

    def nonzero_parameters(self) -> int:
        """Measured: non-zero entries of the built weights (compare :func:`claimed_nonzero_parameters`)."""
        return nonzero_parameters(self.model)

    def measured_resources(self) -> Resources:
        return replace(measured_resources(self.model, self.seq_len), nonzero_parameters=self.nonzero_parameters())
