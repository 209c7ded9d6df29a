"""The one-hot lag lookup: for a set of lags ``S``, two BaseConv layers computing, at every position ``i``,

    out[i] = sum_{s in S} G_s[i] · <e(x_i), e(x_{i-s})> · e(x_{i-s+1})                                  (*)

Glossary ([Z] Thm 4.5, theory.md §4.3): ``Q = K = V = e(x)`` the one-hot code (width ``c``);
``m_s = Q ⊙ shiftDown(K, s)`` the per-channel match; ``E_s = m_s · 1_{c×c}`` the broadcast match; ``z_s = E_s ⊙
shiftDown(V, s - 1)``; ``G_s`` the
position gate of :mod:`._baseconv_layout` (query slot at ``i``, key slot at ``i - s``).

Channel groups: for the ``j``-th lag ``s_j`` a match block ``M_j`` and a value block ``V_j`` (``c`` channels each), so
``d = 2·t·c`` for ``t = |S|``. The embedding copies ``e(x)`` into every block.

Layer A (match, and the value shifted and gated):
    ``M_j``: ``W[M_j -> M_j] = I_c``, ``b1 = 0``, ``h = X^{s_j}``, ``b2 = 0``  ->  ``e_q(x_i)·e_q(x_{i-s_j})``;
    ``V_j``: ``W = 0``, ``b1 = G_{s_j}``, ``h = X^{s_j - 1}``, ``b2 = 0``  ->  ``G_{s_j}[i]·e_q(x_{i-s_j+1})``.
    The gate rides on the *value* branch, where a position-dependent bias can carry it (erratum 6); gating the value
    is the same as gating the match, since the two are multiplied in layer B.
Layer B (broadcast the match onto the value):
    ``V_j``: ``W[M_j -> V_j] = 1_{c×c}``, ``b1 = 0``, ``h = X^0``, ``b2 = 0``  ->  ``(sum_q m_{j,q}[i])·V_j[i, q']``;
    ``M_j``: all zero (not read again).
Unembedding: ``sum_j V_j``. Every term of (*) has degree 3 in the one-hot entries (2 layers allow 4).

Why it solves MQAR: at a query slot ``i`` whose token is the key at slot ``p``, the keys being distinct, exactly one
key slot ``p'`` has ``x_{p'} = x_i``, namely ``p``; so the only non-zero term is ``s = i - p`` (if ``s in S``), and it
equals ``e(x_{p+1}) = e(value)``. If ``i - p`` is not in ``S`` the output is 0 (erratum 7: a missed lag is a wrong
answer). Lags whose gate is 0 everywhere are harmless.

Filters are stored at full length ``N`` in layer A (the paper's ``h ∈ R^{N×d}``, independent of which lags are
chosen) and at length 1 in layer B.

**Factored broadcast** (``broadcast="factored"``). ``1_{c×c}`` is rank one, ``1_{c×c} = 1_c 1_cᵀ``: sum first, then
copy. Layer B becomes two layers, so the lookup has 3 layers and ``O(c)`` instead of ``c²`` non-zeros per lag:

    B1: ``M_j[0]``: ``W[M_j -> M_j[0]] = 1_c``, ``h = 0``, ``b2 = 1``  ->  ``σ_j[i] = Σ_q m_{j,q}[i]`` (the match, a
        scalar); the other ``M_j`` channels 0; ``V_j``: carried (``b1 = 1``, ``h = X^0``);
    B2: ``V_j``: ``W[M_j[0] -> V_j] = 1_cᵀ`` (one row), ``h = X^0``  ->  ``σ_j[i]·V_j[i, q']``; ``M_j``: 0.

Same output (*), same degree 3; per lag ``11c + 1 + c·|supp G_s|`` non-zeros against ``7c + c² + c·|supp G_s|``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mqarkit.constructions._baseconv_layout import lag_gate
from mqarkit.constructions._baseconv_reference import ConvWeights
from mqarkit.constructions._baseconv_stack import StackWeights


def check_lags(lags: Sequence[int], seq_len: int) -> list[int]:
    chosen = [int(s) for s in lags]
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"lags={list(lags)!r}: must be a non-empty list of distinct ints")
    bad = [s for s in chosen if not 1 <= s <= seq_len - 1]
    if bad:
        raise ValueError(f"lags: {bad} outside [1, seq_len - 1 = {seq_len - 1}]")
    return chosen


BROADCASTS = ("dense", "factored")


def onehot_lookup_weights(
    seq_len: int, num_kv_pairs: int, vocab_size: int, lags: Sequence[int], broadcast: str = "dense"
) -> StackWeights:
    """Weights of (*) for these lags (one group per lag, in the given order); ``broadcast`` as in the module doc."""
    lags = check_lags(lags, seq_len)
    c, t, n = vocab_size, len(lags), seq_len
    d = 2 * t * c
    eye = np.eye(c)
    embed = np.zeros((c, d))
    unembed = np.zeros((d, c))
    a_w, a_h, a_b1 = np.zeros((d, d)), np.zeros((n, d)), np.zeros((n, d))
    b_w, b_h = np.zeros((d, d)), np.zeros((1, d))
    for j, s in enumerate(lags):
        m_block = slice(2 * j * c, 2 * j * c + c)
        v_block = slice(2 * j * c + c, 2 * j * c + 2 * c)
        embed[:, m_block] = eye
        embed[:, v_block] = eye
        unembed[v_block, :] = eye
        a_w[m_block, m_block] = eye
        a_h[s, m_block] = 1.0
        a_h[s - 1, v_block] = 1.0
        a_b1[:, v_block] = lag_gate(n, num_kv_pairs, s)[:, None]
        b_w[m_block, v_block] = 1.0
        b_h[0, v_block] = 1.0
    layer_a = ConvWeights(weight=a_w, filters=a_h, bias_linear=a_b1, bias_conv=None)
    if broadcast == "dense":
        layer_b = ConvWeights(weight=b_w, filters=b_h, bias_linear=None, bias_conv=None)
        return StackWeights(embed=embed, layers=[layer_a, layer_b], unembed=unembed)
    if broadcast != "factored":
        raise ValueError(f"broadcast={broadcast!r}: must be one of {BROADCASTS}")
    sum_w, sum_h, sum_b1, sum_b2 = np.zeros((d, d)), np.zeros((1, d)), np.zeros(d), np.zeros(d)
    copy_w, copy_h = np.zeros((d, d)), np.zeros((1, d))
    for j in range(t):
        match0 = 2 * j * c  # channel 0 of M_j holds the scalar match after B1
        v_block = slice(2 * j * c + c, 2 * j * c + 2 * c)
        sum_w[2 * j * c : 2 * j * c + c, match0] = 1.0  # W[M_j -> M_j[0]] = 1_c
        sum_b2[match0] = 1.0  # conv branch constant 1: the layer is the linear map there
        sum_b1[v_block], sum_h[0, v_block] = 1.0, 1.0  # V_j carried
        copy_w[match0, v_block] = 1.0  # W[M_j[0] -> V_j] = 1_c^T
        copy_h[0, v_block] = 1.0
    layer_sum = ConvWeights(weight=sum_w, filters=sum_h, bias_linear=sum_b1, bias_conv=sum_b2)
    layer_copy = ConvWeights(weight=copy_w, filters=copy_h, bias_linear=None, bias_conv=None)
    return StackWeights(embed=embed, layers=[layer_a, layer_sum, layer_copy], unembed=unembed)


def onehot_lookup_direct(tokens: np.ndarray, num_kv_pairs: int, vocab_size: int, lags: Sequence[int]) -> np.ndarray:
    """(*) computed directly from its definition (no BaseConv): ``tokens`` (N,) int -> (N, c) int64."""
    tokens = np.asarray(tokens)
    n = tokens.shape[0]
    out = np.zeros((n, vocab_size), dtype=np.int64)
    for s in check_lags(lags, n):
        gate = lag_gate(n, num_kv_pairs, s)
        for i in range(s, n):
            if gate[i] and tokens[i] == tokens[i - s]:
                out[i, tokens[i - s + 1]] += 1
    return out


def onehot_lookup_parameters(seq_len: int, vocab_size: int, t: int, broadcast: str = "dense") -> int:
    """Stored entries, ``d = 2tc``: embed ``c·d`` + layer A (``d² + N·d + N·d``) + unembed ``d·c``, and layer B
    (``d² + d``), or B1 (``d² + 3d``: W, one tap, b1, b2) and B2 (``d² + d``)."""
    d = 2 * t * vocab_size
    common = 2 * vocab_size * d + d * d + 2 * seq_len * d
    return common + (d * d + d if broadcast == "dense" else 2 * d * d + 4 * d)


def onehot_lookup_nonzeros(
    seq_len: int, num_kv_pairs: int, vocab_size: int, lags: Sequence[int], broadcast: str = "dense"
) -> int:
    """Non-zero entries: per lag ``s``: embed ``2c``, unembed ``c``, layer A ``c`` (W) + ``2c`` (filters) +
    ``c·|supp G_s|`` (b1); then layer B ``c²`` (W) + ``c`` (filter), or B1 ``c`` (W) + ``1`` (b2) + ``2c`` (the
    carry's b1 and tap) and B2 ``c`` (W) + ``c`` (filter)."""
    c = vocab_size
    broadcast_cost = c * c + c if broadcast == "dense" else 5 * c + 1
    total = 0
    for s in check_lags(lags, seq_len):
        support = int(np.count_nonzero(lag_gate(seq_len, num_kv_pairs, s)))
        total += 2 * c + c + c + 2 * c + c * support + broadcast_cost
    return total
