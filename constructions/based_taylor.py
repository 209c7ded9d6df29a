"""U9: Based-style Taylor linear attention solves MQAR with one-hot values; compact values trade state for recall.

Glossary (theory.md §2.3, §3.1 U9; [B]):

- ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``; value tokens ``[c//2, c)``, ``V = c - c//2``;
- ``m = d'`` the key/query code width ``ceil(log2 c)`` (the Taylor map's input dimension); ``b(t) in {-1,+1}^m`` the
  sign code of token ``t``; ``sigma = <b(x_t), b(x_{s-1})> in [-m, m]`` the raw score;
- ``phi`` the Taylor map, compressed layout, ``F = 1 + m + m(m+1)/2`` features; ``Kern(sigma) = phi(q).phi(k)
  = 1 + sigma + sigma^2/2 = ((sigma + 1)^2 + 1)/2``;
- ``S = sum_s phi(k_s)^T v_s`` the ``F x d_v`` state; ``K* = Kern(m)`` the match kernel.

Construction (stream blocks ``token`` (c, one-hot), ``prev_token`` (c), ``lookup`` (``d_v``)):

1. *Short convolution* ``h = X^1``: ``prev_token[s] = e_{x_{s-1}}`` (``prev_token[0] = 0``).
2. *Linear attention*, Taylor map (``scale=False``, compressed), unnormalised, causal ``s <= t``:
   ``Q = [B; 0]``, ``K = [0; B]`` with ``B[t] = b(t)`` (``(2c, m)``), so ``q_t = b(x_t)``, ``k_s = b(x_{s-1})``.
   (Equivalently [B]'s scaled map with ``q = k = m^{1/4} b``; the unscaled form keeps every weight an integer, so
   the exact backend runs.) ``lookup[t] = sum_{s <= t} Kern(<b(x_t), b(x_{s-1})>) v_s``.

Kernel facts. ``Kern(m) - Kern(sigma) > 0`` for every ``sigma in {m-2, m-4, ..., -m}``: ``Kern`` is increasing on
``[-1, m]`` and ``Kern(-m) = Kern(m - 2)`` (both ``((m-1)^2 + 1)/2``), so the largest non-match kernel is
``Kern(m - 2) = K* - 2m``: the kernel gap is exactly ``2m``.

Regime A (``values="onehot"``, default): ``V[e_t] = e_{t - c//2}`` for value tokens, 0 otherwise (``d_v = V``);
readout ``argmax`` over value tokens. With ``filler="zero"`` (every paper configuration) value tokens occur only at
the ``P`` value positions of their pair, so ``lookup[t]_{v_j} = P Kern(<b(k), b(k_j)>)``: ``P K*`` for the queried key
and at most ``P (K* - 2m)`` for every other value: **exact for every N and D**, margin ``>= 2mP``. With
``filler="clean"`` a filler may be a value-range token ``u`` that is not a value of the example; each occurrence adds
``Kern(sigma_s) >= 1/2`` (the Taylor kernel never vanishes, unlike the one-hot score of U1) to ``u``'s score, so the
exact condition is ``P K* > sum_{s <= t, x_s = u} Kern(<b(x_t), b(x_{s-1})>)`` for every value token ``u != v``;
it fails once ``u`` repeats about ``(m/(m-2))^2`` times after near-keys (measured: 0.9975 at ``c=128, N=64``).
State ``F V`` (``S``; unnormalised, so no ``z``), independent of ``N`` and ``D``.

Regime B (``values="signcode"``): ``V[e_t] = b_V(t - c//2)``, the sign code of width ``m_V = ceil(log2 V)`` of the
value index (0 for non-values); readout ``argmax_u <lookup, b_V(u)>`` over value tokens. Then
``lookup[t] = P sum_j Kern_j b_V(v_j)`` with ``Kern_j = Kern(<b(k), b(k_j)>)``. **Exact recall condition**: the query
of key ``k = k_i`` is answered correctly iff for every value ``u != v_i``
``sum_j Kern_j <b_V(v_j), b_V(v_i) - b_V(u)> > 0``. Since ``|<b_V(w), b_V(v) - b_V(u)>| <= <b_V(v), b_V(v) - b_V(u)>``
(as in attention_signcode), a **sufficient** condition is ``sum_{j != i} Kern_j < K*``: the interference, a sum of
``D - 1`` kernels each ``<= K* - 2m``, below the match. When ``V`` is a power of two the value codes are all sign
patterns, the readout is bitwise and the exact condition reads: for every bit ``r``,
``K* + sum_{j != i} Kern_j sigma_{j r} > 0`` with ``sigma_{j r} = b_V(v_j)_r b_V(v_i)_r``.

Predicted recall (an approximation, stated as such): treat ``sigma_{jr}`` as independent fair signs and the
``Kern_j`` as i.i.d. with the exact law of ``Kern(<b(k), b(k')>)`` over ordered pairs of distinct keys; by the
central limit theorem each bit is correct with probability ``Phi(K* / sqrt((D-1) E[Kern^2]))`` and
``predicted_recall = Phi(...)^{m_V}``. As ``E[Kern^2] ~ 3m^2/4`` and ``K* ~ m^2/2``, the ratio is about
``m / sqrt(3(D-1))``: regime B recalls ``D = O(m^2)`` pairs with state ``F m_V = O(m^2 log V)``, while regime A
recalls every ``D`` with state ``F V``. :func:`state_for_recall` states both as functions of ``D``.

Resources: layers 2; width ``2c + d_v``; parameters ``2c + 2(2c m) + 2c d_v``; state ``c`` (conv cache)
``+ F d_v``; degree 5 (``2 deg(phi) + 1``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._attention_codes import argmax_readout, check_lookup_sizes, sign_bits, sign_code_width
from mqarkit.constructions._attention_ir import lookup_block, measured
from mqarkit.constructions.api import Construction, Resources, register
from mqarkit.polynomials import CausalConv, Layer, LinearAttention, Model, Stream, TaylorMap

VALUES = ("onehot", "signcode")


def taylor_kernel(score: np.ndarray | int) -> np.ndarray | float:
    """``Kern(sigma) = 1 + sigma + sigma^2/2`` (unscaled Taylor map)."""
    s = np.asarray(score, dtype=np.float64)
    return 1.0 + s + 0.5 * s * s


def feature_width(m: int) -> int:
    """``F = 1 + m + m(m+1)/2`` (compressed Taylor layout)."""
    return 1 + m + m * (m + 1) // 2


def value_code_width(vocab_size: int) -> int:
    """``m_V = ceil(log2 V)``, at least 1, ``V = c - c//2``."""
    return max(1, math.ceil(math.log2(vocab_size - vocab_size // 2)))


def key_kernel_law(vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact law of ``Kern(<b(k), b(k')>)`` over ordered pairs of distinct keys of ``[1, c//2)``: (values, probs)."""
    m = sign_code_width(vocab_size)
    keys = sign_bits(vocab_size, m)[1 : vocab_size // 2]  # (K, m)
    if len(keys) < 2:
        raise ValueError(f"vocab_size={vocab_size}: needs at least 2 key tokens")
    scores = keys @ keys.T  # (K, K)
    off = ~np.eye(len(keys), dtype=bool)
    vals, counts = np.unique(scores[off], return_counts=True)
    return taylor_kernel(vals), counts / counts.sum()


def predicted_recall(vocab_size: int, num_kv_pairs: int) -> float:
    """Regime B's predicted accuracy (CLT approximation, see the module docstring): ``Phi(K*/sqrt((D-1)E K^2))^m_V``."""
    if num_kv_pairs < 1:
        raise ValueError(f"num_kv_pairs={num_kv_pairs}: must be >= 1")
    if num_kv_pairs == 1:
        return 1.0
    m = sign_code_width(vocab_size)
    vals, probs = key_kernel_law(vocab_size)
    ratio = taylor_kernel(m) / math.sqrt((num_kv_pairs - 1) * float((probs * vals**2).sum()))
    return (0.5 * (1.0 + math.erf(ratio / math.sqrt(2.0)))) ** value_code_width(vocab_size)


def state_for_recall(vocab_size: int, num_kv_pairs: int, values: str = "onehot") -> int:
    """State numbers (``S`` only; plus the ``c`` conv cache in ``Resources``) the construction carries to recall
    ``D`` pairs: regime A ``F V`` for every ``D`` (exact); regime B ``F m_V`` (recall ``predicted_recall``)."""
    if values not in VALUES:
        raise ValueError(f"values={values!r}: must be one of {VALUES}")
    F = feature_width(sign_code_width(vocab_size))
    return F * (vocab_size - vocab_size // 2 if values == "onehot" else value_code_width(vocab_size))


@register
class BasedTaylor(Construction):
    """Short convolution + Taylor linear attention (theory.md U9)."""

    name: ClassVar[str] = "based_taylor"
    claim_ids: ClassVar[tuple[str, ...]] = ("U9",)
    KNOBS: ClassVar[tuple[str, ...]] = ("values",)

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        check_lookup_sizes(
            cls.name, cls.KNOBS, knobs, vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, min_vocab=4
        )
        if knobs.get("values", "onehot") not in VALUES:
            raise ValueError(f"values={knobs['values']!r}: must be one of {VALUES}")
        if num_kv_pairs > vocab_size // 2 - 1:
            raise ValueError(f"num_kv_pairs={num_kv_pairs}: needs num_kv_pairs <= vocab_size//2 - 1 distinct keys")

    @staticmethod
    def _dv(vocab_size: int, values: str) -> int:
        return vocab_size - vocab_size // 2 if values == "onehot" else value_code_width(vocab_size)

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        c, m = vocab_size, sign_code_width(vocab_size)
        dv = cls._dv(c, knobs.get("values", "onehot"))
        return Resources(2, 2 * c + dv, 2 * c + 4 * c * m + 2 * c * dv, c + feature_width(m) * dv, 5)

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "values='onehot': every zero-filler MQAR instance, every N and D (exact, float64 and exact backends); "
            "values='signcode': accuracy ~ predicted_recall(c, D) (CLT approximation; measured, not proved)"
        )

    @property
    def values(self) -> str:
        return self.knobs.get("values", "onehot")

    def value_codebook(self) -> np.ndarray:
        """Codes of the value tokens ``[c//2, c)`` in the ``lookup`` block: (V, d_v) int64."""
        V = self.vocab_size - self.vocab_size // 2
        if self.values == "onehot":
            return np.eye(V, dtype=np.int64)
        return sign_bits(V, value_code_width(self.vocab_size))

    def _build_model(self) -> Model:
        c, m = self.vocab_size, sign_code_width(self.vocab_size)
        B = sign_bits(c, m)  # (c, m) key / query codes b(t)
        zero_b = np.zeros_like(B)
        dv = self._dv(c, self.values)
        wv_token = np.zeros((c, dv), dtype=np.int64)
        wv_token[c // 2 :] = self.value_codebook()  # values -> their code, every other token -> 0
        taps = np.zeros((2, c), dtype=np.int64)
        taps[1] = 1  # h = X^1
        attn = LinearAttention(
            wq=np.vstack([B, zero_b]),  # q_t = b(x_t)
            wk=np.vstack([zero_b, B]),  # k_s = b(x_{s-1})
            wv=np.vstack([wv_token, np.zeros_like(wv_token)]),  # v_s = code(x_s) for value tokens
            feature_map=TaylorMap(m, layout="compressed", scale=False),
            normalise=False,
        )
        return Model(
            Stream.of(("token", c), ("prev_token", c), ("lookup", dv)),
            (
                Layer(CausalConv(taps), reads=("token",), writes=("prev_token",)),
                Layer(attn, reads=("token", "prev_token"), writes=("lookup",)),
            ),
        )

    def readout_scores(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        """``<lookup[t], code(u)>`` for every value token ``u``: (n, N, V) float64."""
        out = lookup_block(
            self.model, np.asarray(inputs, dtype=np.int64), np.eye(self.vocab_size, dtype=np.int64), backend
        )
        return argmax_readout(out, self.value_codebook(), np.arange(self.value_codebook().shape[0]))[1]

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        return self.vocab_size // 2 + np.argmax(self.readout_scores(inputs, backend), axis=-1).astype(np.int64)

    def measured_resources(self) -> Resources:
        return measured(self.model, self.seq_len)
