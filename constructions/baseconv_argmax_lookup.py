"""Data-independent BaseConv MQAR with an argmax readout, at depths below L2's exact-output bound (claim X1, [ours]).

Glossary (theory.md §1.3, §4.4): ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``,
``m = ⌈log2 c⌉``, ``a(x) ∈ {-1,+1}^m`` the sign code, ``G_s`` the position gate of lag ``s`` (:mod:`._baseconv_layout`),
``σ_s(i) = <a(x_i), a(x_{i-s})>`` the code inner product (``m`` for equal tokens, ``m - 2·ham`` otherwise), ``L`` the
depth, ``j = L - 2`` the sharpening levels, ``Q_j`` the sharpening polynomial, ``r_ℓ`` its integer roots.

L2 bounds models whose output *is* the answer (an exact polynomial identity): equality of two ``m``-bit codes has
degree ``2m``, so ``⌈log2(2m)⌉`` layers. Every construction here reads out with ``argmax_u <out, a(u)>``, which only
needs the answer's score to be the largest, and that needs far less:

    out[i] = sum_{s in S} G_s[i] · Q_j(σ_s(i)) · a(x_{i-s+1})                                                  (*)

over every lag ``S = {2, 4, .., 2⌊(N-1)/2⌋}``, with ``Q_0(σ) = σ`` and ``Q_ℓ(σ) = Q_{ℓ-1}(σ)² - r_ℓ²``.

Correctness condition (exact, proved). At the query of key ``k`` (value ``v``), ``out = Q_j(m)·a(v) + Σ_o
Q_j(σ_o)·a(v_o)`` over the other keys ``o``. For any ``u ≠ v`` (Hamming distance ``h`` from ``v``), ``<a(v) - a(u),
a(v)> = 2h`` and ``|<a(v) - a(u), a(v_o)>| <= 2h``, so the readout margin is ``>= 2h·(Q_j(m) - Σ_o |Q_j(σ_o)|)``: the
construction solves every instance whose interference ``Σ_o |Q_j(σ_o)|`` is below ``Q_j(m)``. Keys lie in ``[1, c/2)``,
so their top bit is 0 and ``|σ_o| <= m - 2``; :func:`worst_interference` takes the ``D - 1`` keys with the largest
``|Q_j(σ)|`` (by the count ``C(m-1, h)`` of keys at each distance ``h``, less the excluded token 0). Conversely, at ``c
= 2^m`` those keys exist, and values whose bit 0 opposes ``v`` exactly where ``Q_j(σ_o) > 0`` (and agrees where it is
negative) make the margin against ``u = v XOR 1`` equal ``2(Q_j(m) - Σ_o |Q_j(σ_o)|)``: the condition is then necessary
as well (:func:`worst_instance` builds that instance).

Depth. ``L = 1`` (``D = 1`` only): the value channels alone, ``G_s[i]·a(x_{i-s+1})`` (with one key there is nothing to
compare). ``L = 2``: layer 1 forms ``P_k = a_k(x_i)·a_k(x_{i-s})`` (equality channels, ``W = I``, ``h = X^s``) and the
gated value (value channels, ``b1 = G_s``, ``h = X^{s-1}``); layer 2 broadcasts ``σ = Σ_k P_k`` onto the value channels
(``W = 1_{m×m}``, ``h = X^0``). Each further layer is one sharpening level: equality channel ``k`` becomes
``(Σ_k' y_k' + r)·(y_k + e_k)`` (``W = 1_{m×m}``, ``b1 = r``, ``h = X^0``, ``b2 = e``, ``e_0 = -r``, others 0), so the
sum over ``k`` goes from ``Q`` to ``(Q + r)(Q - r) = Q² - r²``; the value channels are carried (``b1 = 1``,
``h = X^0``). The roots follow the Chebyshev idea (``T_2(x) = 2x² - 1``): ``r_ℓ`` is the integer nearest to
``sqrt((min + max)/2)`` of ``Q_{ℓ-1}²`` over the non-matching scores, which centres the non-matching values around 0
while ``Q_ℓ(m)`` grows; every weight is an integer, so the exact backend is exact.

The default ``depth`` is the smallest ``L`` for which :func:`worst_interference` ``< Q_j(m)`` (:func:`argmax_depth`),
capped at :data:`MAX_LEVELS` sharpening levels; outside that (more keys than the levels can separate) the sizes are out
of range and ``baseconv_data_independent`` (exact output) is the construction to use. A smaller ``depth`` builds only
with ``outside_claimed_range=True`` (its worst instance fails: :func:`worst_instance`).

Resources (dense storage, ``d = 2m·|S|``, or ``m·|S|`` at ``L = 1``; width ``2m + d``): embed and unembed ``2m·d``;
layer 1 ``d² + 2N·d``; each sharpening layer ``d² + 3d``; the last layer ``d² + d``; state ``(N - 1)·d``; degree
``2^{j+1} + 1`` (``1`` at ``L = 1``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._baseconv_layout import all_lags, lag_gate
from mqarkit.constructions._baseconv_mqar import check_mqar_sizes
from mqarkit.constructions._baseconv_reference import ConvWeights
from mqarkit.constructions._baseconv_sign_lookup import sign_codebook, sign_width
from mqarkit.constructions._baseconv_stack import (
    StackWeights,
    argmax_predict,
    as_ir_model,
    measured_resources,
    run_ir_model,
)
from mqarkit.constructions.api import Construction, Resources, register

MAX_LEVELS = 4  # sharpening levels tried by argmax_depth (depth up to 6); the roots stay below 2^53 for m <= 17


@lru_cache(maxsize=256)
def roots(m: int, levels: int) -> tuple[int, ...]:
    """The integer roots ``r_1 .. r_levels`` of the sharpening polynomials for code width ``m`` (module docstring)."""
    values = [m - 2 * h for h in range(1, m)]  # non-matching scores σ (top bits agree)
    out = []
    for _ in range(levels):
        squares = [q * q for q in values]
        r = round(math.sqrt((min(squares) + max(squares)) / 2))
        out.append(r)
        values = [q - r * r for q in squares]
    return tuple(out)


def sharpen(sigma: int, m: int, levels: int) -> int:
    """``Q_levels(σ)``: ``Q_0 = σ``, ``Q_ℓ = Q_{ℓ-1}² - r_ℓ²`` (exact integers)."""
    q = int(sigma)
    for r in roots(m, levels):
        q = q * q - r * r
    return q


def worst_interference(vocab_size: int, num_kv_pairs: int, levels: int) -> int:
    """``max Σ_o |Q(σ_o)|`` over ``D - 1`` keys other than the queried one, keys in ``[1, 2^(m-1))``: the ``C(m-1, h)``
    keys at distance ``h`` from the query key score ``σ = m - 2h``, and one key is missing (token 0, at the distance
    of the query key's popcount, which the worst query key places where ``|Q|`` is smallest). Exact for ``c = 2^m``, an
    upper bound otherwise (the key range ``[1, c/2)`` is then smaller)."""
    m = sign_width(vocab_size)
    others = num_kv_pairs - 1
    if others <= 0:
        return 0
    weight = {h: abs(sharpen(m - 2 * h, m, levels)) for h in range(1, m)}
    count = {h: math.comb(m - 1, h) for h in range(1, m)}
    count[min(weight, key=lambda h: (weight[h], h))] -= 1  # the query key's missing neighbour (token 0)
    total, left = 0, others
    for h in sorted(weight, key=lambda h: (-weight[h], h)):
        take = min(left, count[h])
        total, left = total + take * weight[h], left - take
        if left == 0:
            return total
    raise ValueError(f"num_kv_pairs={num_kv_pairs}: more keys than the {2 ** (m - 1) - 1} tokens of [1, 2^(m-1))")


def solves(vocab_size: int, num_kv_pairs: int, depth: int) -> bool:
    """Whether the depth-``L`` construction solves every instance (the proved condition of the module docstring)."""
    if depth == 1:
        return num_kv_pairs == 1
    levels = depth - 2
    m = sign_width(vocab_size)
    return worst_interference(vocab_size, num_kv_pairs, levels) < sharpen(m, m, levels)


def argmax_depth(vocab_size: int, num_kv_pairs: int) -> int | None:
    """The smallest depth ``L <= 2 + MAX_LEVELS`` at which the construction solves every instance, else ``None``."""
    for depth in range(1, 3 + MAX_LEVELS):
        if solves(vocab_size, num_kv_pairs, depth):
            return depth
    return None


def argmax_weights(seq_len: int, num_kv_pairs: int, vocab_size: int, depth: int) -> StackWeights:
    """The weights of (*) at depth ``L`` (any ``L >= 1``; whether they solve MQAR is :func:`solves`)."""
    m, n, lags = sign_width(vocab_size), seq_len, all_lags(seq_len)
    eye = np.eye(m)
    if depth == 1:
        d = m * len(lags)
        embed, unembed = np.zeros((m, d)), np.zeros((d, m))
        h1, b1 = np.zeros((n, d)), np.zeros((n, d))
        for j, s in enumerate(lags):
            val = slice(j * m, (j + 1) * m)
            embed[:, val], unembed[val, :] = eye, eye
            h1[s - 1, val] = 1.0
            b1[:, val] = lag_gate(n, num_kv_pairs, s)[:, None]
        return StackWeights(embed, [ConvWeights(np.zeros((d, d)), h1, b1, None)], unembed)
    g = 2 * m
    d = g * len(lags)
    embed, unembed = np.zeros((m, d)), np.zeros((d, m))
    w1, h1, b1 = np.zeros((d, d)), np.zeros((n, d)), np.zeros((n, d))
    for j, s in enumerate(lags):
        eq, val = slice(j * g, j * g + m), slice(j * g + m, (j + 1) * g)
        embed[:, eq], embed[:, val], unembed[val, :] = eye, eye, eye
        w1[eq, eq] = eye  # P_k = a_k(x_i) · a_k(x_{i-s})
        h1[s, eq] = 1.0
        h1[s - 1, val] = 1.0  # V = G_s[i] · a(x_{i-s+1})
        b1[:, val] = lag_gate(n, num_kv_pairs, s)[:, None]
    layers = [ConvWeights(w1, h1, b1, None)]
    for r in roots(m, depth - 2):
        w, h, bl, bc = np.zeros((d, d)), np.ones((1, d)), np.zeros(d), np.zeros(d)
        for j in range(len(lags)):
            eq, val = slice(j * g, j * g + m), slice(j * g + m, (j + 1) * g)
            w[eq, eq] = 1.0  # Σ_k' y_k' onto every equality channel
            bl[eq], bc[j * g] = float(r), float(-r)  # (Q + r)(y_k + e_k), e_0 = -r
            bl[val] = 1.0  # the value channels carried
        layers.append(ConvWeights(w, h, bl, bc))
    w, h = np.zeros((d, d)), np.zeros((1, d))
    for j in range(len(lags)):
        eq, val = slice(j * g, j * g + m), slice(j * g + m, (j + 1) * g)
        w[eq, val] = 1.0  # Q = Σ_k y_k broadcast onto the value channels
        h[0, val] = 1.0
    layers.append(ConvWeights(w, h, None, None))
    return StackWeights(embed, layers, unembed)


def argmax_parameters(seq_len: int, vocab_size: int, depth: int) -> int:
    m, groups = sign_width(vocab_size), len(all_lags(seq_len))
    d = (m if depth == 1 else 2 * m) * groups
    first = d * d + 2 * seq_len * d
    if depth == 1:
        return 2 * m * d + first
    return 2 * m * d + first + (depth - 2) * (d * d + 3 * d) + (d * d + d)


def direct_output(tokens: np.ndarray, num_kv_pairs: int, vocab_size: int, depth: int) -> np.ndarray:
    """(*) from its definition: ``tokens`` (N,) -> (N, m) int (Python ints: exact at any size)."""
    tokens = np.asarray(tokens)
    n, m = tokens.shape[0], sign_width(vocab_size)
    code = sign_codebook(vocab_size)[tokens]
    out = np.zeros((n, m), dtype=object)
    for s in all_lags(n):
        gate = lag_gate(n, num_kv_pairs, s)
        for i in range(s, n):
            if gate[i]:
                score = 1 if depth == 1 else sharpen(int(code[i] @ code[i - s]), m, depth - 2)
                out[i] = out[i] + score * code[i - s + 1].astype(object)
    return out


def worst_instance(vocab_size: int, seq_len: int, num_kv_pairs: int, depth: int) -> tuple[np.ndarray, int, int]:
    """For ``c = 2^m``: a clean instance (zero filler) on which the margin against ``u = v XOR 1`` is
    ``2(Q(m) - worst_interference)`` (module docstring). Returns ``(tokens (N,), query position, answer)``."""
    c, m, d = vocab_size, sign_width(vocab_size), num_kv_pairs
    if c & (c - 1):
        raise ValueError(f"vocab_size={c}: worst_instance needs a power of two")
    if depth < 2:
        raise ValueError(f"depth={depth}: the worst instance is for the sharpened lookups (depth >= 2)")
    levels = depth - 2
    weight = {h: abs(sharpen(m - 2 * h, m, levels)) for h in range(1, m)}
    lightest = min(weight, key=lambda h: (weight[h], h))
    key = (1 << lightest) - 1  # popcount = the lightest distance: token 0 is missing there
    candidates = sorted((t for t in range(1, c // 2) if t != key), key=lambda t: (-weight[bin(t ^ key).count("1")], t))
    keys = [key, *candidates[: d - 1]]
    value = c // 2 + 1  # odd: u = value - 1 wins a tie, so a tie is a failure too
    others = []
    for t in keys[1:]:
        q = sharpen(m - 2 * bin(t ^ key).count("1"), m, levels)
        bit = 0 if q > 0 else 1  # oppose the answer's bit 0 (= 1) where Q > 0, agree where Q < 0
        others.append(c // 2 + 2 * (len(others) + 1) + bit)
    tokens = np.zeros(seq_len, dtype=np.int64)
    for j, (k, v) in enumerate(zip(keys, [value, *others])):
        tokens[2 * j], tokens[2 * j + 1] = k, v
    tokens[2 * d] = key  # the first query slot
    for j, k in enumerate(keys[1:], start=1):
        tokens[2 * d + 2 * j] = k
    return tokens, 2 * d, value


@register
class BaseConvArgmaxLookup(Construction):
    """Data-independent sign-code BaseConv at the smallest depth the argmax readout allows (claim X1)."""

    name = "baseconv_argmax_lookup"
    claim_ids: ClassVar[tuple[str, ...]] = ("X1",)
    exact_backends: ClassVar[tuple[str, ...]] = ("float64", "exact")

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - {"depth"})
        if unknown:
            raise ValueError(f"knobs {unknown}: unknown for {cls.name!r}; the only knob is depth")
        check_mqar_sizes(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs)
        depth = knobs.get("depth")
        if depth is None:
            if argmax_depth(vocab_size, num_kv_pairs) is None:
                raise ValueError(
                    f"num_kv_pairs={num_kv_pairs}: no depth <= {2 + MAX_LEVELS} separates {num_kv_pairs} keys of "
                    f"{sign_width(vocab_size)} bits under an argmax here; use baseconv_data_independent"
                )
            return
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"depth={depth!r}: must be an int >= 1")

    @classmethod
    def claimed_range_violation(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> str | None:
        """A given ``depth`` is claimed only where the proved condition holds (:func:`solves`)."""
        depth = knobs.get("depth")
        if depth is not None and not solves(vocab_size, num_kv_pairs, int(depth)):
            return (
                f"depth={depth}: the argmax lookup does not solve every instance with num_kv_pairs={num_kv_pairs}, "
                f"m={sign_width(vocab_size)} (interference >= the match's score); argmax_depth gives the smallest"
            )
        return None

    @classmethod
    def _depth(cls, vocab_size: int, num_kv_pairs: int, knobs: dict[str, Any]) -> int:
        depth = knobs.get("depth")
        return int(depth) if depth is not None else int(argmax_depth(vocab_size, num_kv_pairs) or 0)

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        depth = cls._depth(vocab_size, num_kv_pairs, knobs)
        m, groups = sign_width(vocab_size), len(all_lags(seq_len))
        d = (m if depth == 1 else 2 * m) * groups
        degree = 1 if depth == 1 else 2 ** (depth - 1) + 1
        return Resources(depth, 2 * m + d, argmax_parameters(seq_len, vocab_size, depth), (seq_len - 1) * d, degree)

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "every instance of the raw-token layout (zero, clean or random filler) with N even, 4D <= N, "
            "D <= c//2 - 1, c > N, at depth argmax_depth(c, D) (or any depth where solves(c, D, depth)); exact in "
            "every backend"
        )

    @property
    def depth(self) -> int:
        return self._depth(self.vocab_size, self.num_kv_pairs, self.knobs)

    def codebook(self) -> np.ndarray:
        return sign_codebook(self.vocab_size)

    def _build_model(self) -> Any:
        return as_ir_model(argmax_weights(self.seq_len, self.num_kv_pairs, self.vocab_size, self.depth), self.name)

    def output(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        """``inputs`` (n, N) -> (n, N, m): the ``out`` block before the readout, via the IR."""
        return run_ir_model(self.model, self.codebook()[np.asarray(inputs)], backend)

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        return argmax_predict(self.output(inputs, backend), self.codebook(), backend)

    def measured_resources(self) -> Resources:
        return measured_resources(self.model, self.seq_len)
