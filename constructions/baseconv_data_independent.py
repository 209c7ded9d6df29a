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
:mod:`._baseconv_sign_tree` with the value folded in (:mod:`._baseconv_sign_lookup`): ``1 + ⌈log2(m+1)⌉`` BaseConv
layers, degree ``2m + 1``. The knob ``gate`` says how "keys only" is paid for: ``"per_lag"`` (default, the gate
``G_s`` as a position-dependent bias of every lag's value channels) or ``"shared"`` (the value-slot flags applied once,
in a shared block, then copied to every lag: ``2 + ⌈log2(⌈m/2⌉ + 1)⌉`` layers, and ``Θ(N·m·log m + m·D)`` non-zero
weights instead of ``Θ(N·m·D)``; derivation in :mod:`._baseconv_sign_lookup`).
``encoding="onehot"``: the one-hot lookup of :mod:`._baseconv_onehot_lookup` over every lag: ``d = 2c·|S|``, 2 layers,
degree 3 (one-hot equality is the degree-2 inner product ``<e(x), e(y)>``).

Resources (stream blocks ``token`` (w), ``work`` (d), ``out`` (w); ``w = m`` or ``c``; every weight stored dense, the
policy of ``mqarkit.polynomials``): sign,

    parameters = m·d (embed) + [d² + N·d + N·d] (layer 1: W, filters of length N, position-dependent b1)
                 + ⌈log2(m+1)⌉·[d² + 3d] (tree: W, one tap, b1 and b2 per channel) + d·m (unembed),
    state      = (N - 1)·d (the length-N filters of layer 1; one-tap layers carry nothing).

Dense storage makes this ``Θ(N² m²)`` (erratum 9: a dense ``W`` costs ``d²``); the weights are sparse, and
:func:`claimed_nonzero_parameters` gives the exact number of non-zero entries. With ``gate="per_lag"`` it is
``Θ(N·m·(D + log m))``: Õ(N log c) only for polylogarithmic ``D``, because of the gate term ``m·D·(N - 2D)/2`` (the
position-dependent gate biases, one entry per (key slot, query slot) pair and value channel). With ``gate="shared"`` it
is ``Θ(N·m·log m + m·D)``: Õ(N log c) for every ``D`` (U4 as [Z] states it, in non-zero weights).
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
from mqarkit.constructions._baseconv_sign_lookup import (
    GATES,
    gate_depth,
    shared_gate_direct,
    shared_gate_nonzeros,
    shared_gate_parameters,
    shared_gate_weights,
    sign_codebook,
    sign_lookup_direct,
    sign_lookup_nonzeros,
    sign_lookup_parameters,
    sign_lookup_weights,
    sign_width,
)
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

__all__ = ["GATES", "sign_codebook", "sign_width"]  # re-exported: the sign code lives in ._baseconv_sign_lookup


# --------------------------------------------------------------------------------------------------------------------
# weights


def sign_weights(seq_len: int, num_kv_pairs: int, vocab_size: int, gate: str = "per_lag") -> StackWeights:
    """The sign-code construction over every lag (see :mod:`._baseconv_sign_lookup`)."""
    if gate == "shared":
        return shared_gate_weights(seq_len, num_kv_pairs, vocab_size, all_lags(seq_len))
    return sign_lookup_weights(seq_len, num_kv_pairs, vocab_size, all_lags(seq_len))


def construction_weights(
    seq_len: int, num_kv_pairs: int, vocab_size: int, encoding: str, gate: str = "per_lag"
) -> StackWeights:
    if encoding == "sign":
        return sign_weights(seq_len, num_kv_pairs, vocab_size, gate)
    return onehot_lookup_weights(seq_len, num_kv_pairs, vocab_size, all_lags(seq_len))


# --------------------------------------------------------------------------------------------------------------------
# the direct oracle and the intended polynomial


def direct_output(
    tokens: np.ndarray, num_kv_pairs: int, vocab_size: int, encoding: str = "sign", gate: str = "per_lag"
) -> np.ndarray:
    """(**) evaluated from its definition, without BaseConv: ``tokens`` (N,) int -> (N, w)."""
    tokens = np.asarray(tokens)
    n = tokens.shape[0]
    if encoding == "onehot":
        return onehot_lookup_direct(tokens, num_kv_pairs, vocab_size, all_lags(n))
    if gate == "shared":
        return shared_gate_direct(tokens, num_kv_pairs, vocab_size, all_lags(n))
    return sign_lookup_direct(tokens, num_kv_pairs, vocab_size, all_lags(n))


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


def claimed_nonzero_parameters(
    seq_len: int, num_kv_pairs: int, vocab_size: int, encoding: str = "sign", gate: str = "per_lag"
) -> int:
    """Exact number of non-zero weight entries (formulas in :mod:`._baseconv_sign_lookup` and
    :mod:`._baseconv_onehot_lookup`); with ``gate="per_lag"`` the gate biases add ``m`` per (key slot, query slot)
    pair, ``m·D·(N - 2D)/2`` in all (every such pair has its lag in S)."""
    lags = all_lags(seq_len)
    if encoding == "onehot":
        return onehot_lookup_nonzeros(seq_len, num_kv_pairs, vocab_size, lags)
    if gate == "shared":
        return shared_gate_nonzeros(seq_len, num_kv_pairs, vocab_size, lags)
    return sign_lookup_nonzeros(seq_len, num_kv_pairs, vocab_size, lags)


def claimed(seq_len: int, num_kv_pairs: int, vocab_size: int, encoding: str, gate: str = "per_lag") -> Resources:
    """Closed-form resources (see the module docstring); width = stream width ``2w + d``."""
    n, groups = seq_len, len(all_lags(seq_len))
    nonzeros = claimed_nonzero_parameters(n, num_kv_pairs, vocab_size, encoding, gate)
    if encoding == "onehot":
        w, d = vocab_size, 2 * vocab_size * groups
        parameters = onehot_lookup_parameters(n, vocab_size, groups)
        return Resources(2, 2 * w + d, parameters, (n - 1) * d, 3, nonzeros)
    m = sign_width(vocab_size)
    if gate == "shared":
        d = 2 * m * groups + m
        parameters = shared_gate_parameters(n, vocab_size, groups)
        state = 2 * (n - 1) * d  # layer 1 and the first tree layer with the value hold length-N filters
    else:
        d = 2 * m * groups
        parameters = sign_lookup_parameters(n, vocab_size, groups)
        state = (n - 1) * d
    return Resources(gate_depth(m, gate), 2 * m + d, parameters, state, 2 * m + 1, nonzeros)


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
        unknown = sorted(set(knobs) - {"encoding", "gate"})
        if unknown:
            raise ValueError(
                f"knobs {unknown}: unknown for {cls.name!r}; the knobs are encoding in {ENCODINGS} and gate in {GATES}"
            )
        encoding = knobs.get("encoding", "sign")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding={encoding!r}: must be one of {ENCODINGS}")
        gate = knobs.get("gate", "per_lag")
        if gate not in GATES:
            raise ValueError(f"gate={gate!r}: must be one of {GATES}")
        if gate == "shared" and encoding != "sign":
            raise ValueError(f"gate='shared': needs encoding='sign' (got {encoding!r}); one-hot gates stay per lag")
        check_mqar_sizes(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs)

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        return claimed(seq_len, num_kv_pairs, vocab_size, knobs.get("encoding", "sign"), knobs.get("gate", "per_lag"))

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "every instance of the raw-token layout (any filler: zero, random, clean) with N even, 4D <= N, "
            "D <= c//2 - 1, c > N (the MQARSpec rules), one pass; exact in every backend"
        )

    @property
    def encoding(self) -> str:
        return self.knobs.get("encoding", "sign")

    @property
    def gate(self) -> str:
        return self.knobs.get("gate", "per_lag")

    def codebook(self) -> np.ndarray:
        return sign_codebook(self.vocab_size) if self.encoding == "sign" else np.eye(self.vocab_size, dtype=np.int64)

    def weights(self) -> StackWeights:
        return construction_weights(self.seq_len, self.num_kv_pairs, self.vocab_size, self.encoding, self.gate)

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
