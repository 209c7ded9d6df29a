"""U10: the delta rule stores D key-value pairs exactly in a ``d_k x d_v`` state when the keys are orthonormal.

Glossary (theory.md §2.4; DeltaNet, Schlag et al. 2021 / Yang et al. 2024; fla's ``DeltaNet`` layer):

- ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``, ``P`` = ``num_passes``;
- ``S`` the ``d_k x d_v`` fast-weight state; ``k_i, v_i, q_i`` the key, value, query of position ``i``;
  ``beta in (0, 1]`` the write strength; the delta rule ``S_i = S_{i-1} + beta k_i^T (v_i - k_i S_{i-1})``, read
  ``y_i = q_i S_i`` (:class:`mqarkit.polynomials.DeltaRule`);
- ``e_t`` the one-hot code of token ``t`` (``d_k = c``); ``m`` the balanced-code width
  (:func:`~mqarkit.constructions._balanced_codes.balanced_code_width`), ``b(u) in {-1,+1}^m`` the balanced sign code
  of token ``u`` and ``a(u) = (b(u) + 1)/2 in {0,1}^m`` its 0/1 form with ``m/2`` ones (``d_v = m``).

**Storage lemma.** Let ``k_1 .. k_D`` be orthonormal rows of ``R^{d_k}`` (so ``D <= d_k``) and write
``(k_{i_1}, w_1), (k_{i_2}, w_2), ...`` in any order, any key any number of times, from ``S = 0`` with ``beta = 1``.
Then ``k_i S = `` the value of the last write of ``k_i`` (0 if none).
*Proof.* A write of ``(k_j, w)`` changes ``S`` to ``S' = S + k_j^T (w - k_j S)``. For ``i = j``:
``k_j S' = k_j S + (k_j k_j^T)(w - k_j S) = w`` since ``k_j k_j^T = 1``. For ``i != j``: ``k_i S' = k_i S`` since
``k_i k_j^T = 0``. Induct over the writes. With ``0 < beta <= 1`` the same computation gives
``k_j S' = (1 - beta) k_j S + beta w``: after ``r`` writes of the same ``w`` from ``k_j S = 0``, ``k_j S = (1 - (1 -
beta)^r) w``.  QED.

**Construction** (stream blocks ``token`` (c), ``prev_token`` (c), ``lookup`` (m)):

1. *Shift* ``h = X^1`` (``CausalConv``): ``prev_token[s] = e_{x_{s-1}}``, ``0`` at ``s = 0``;
2. *Delta rule* on ``[token; prev_token]``: ``Q = [I_c; 0]``, ``K = [0; I_c]``, ``V = [A; 0]`` with ``A[u] = a(u)``,
   so ``q_t = e_{x_t}``, ``k_s = e_{x_{s-1}}`` (one-hot: orthonormal), ``v_s = a(x_s)``.

Readout ``argmax_u <lookup[t], b(u)>`` over all ``c`` tokens (ties to the smallest id).

**Theorem (MQAR).** On a clean instance (filler ``zero`` or ``clean``, any ``P``), the query ``t`` of key ``k`` with
value ``v`` reads ``lookup[t] = (1 - (1 - beta)^P) a(v)`` and the readout answers ``v`` with margin
``2 (1 - (1 - beta)^P) >= 2 beta``. *Proof.* The slot ``e_k`` is written at the positions ``s <= t`` with
``x_{s-1} = k``: the ``P`` value positions of the pair (value ``v``) and no other (``k`` occurs before ``t`` only in
the key-value blocks; ``x_{t-1}`` is a filler or a value, never ``k``; position 0 writes the zero key, which changes
nothing). By the lemma ``e_k S_t = (1 - (1 - beta)^P) a(v)``, which ``q_t = e_k`` reads. For ``u != v``,
``<a(v), b(u)> <= m/2 - 2 < m/2 = <a(v), b(v)>`` (balanced codes).  QED.

The 0/1 values are what fla's ``DeltaNet`` layer carries exactly: its value path ends in a SiLU, which maps
``gamma a(u)`` to ``silu(gamma) a(u)`` (``silu(0) = 0``); its in-kernel L2 normalisation keeps one-hot keys as they
are (:mod:`mqarkit.gpu.load_fla_layers`).

Resources: layers 2; width ``2c + m``; parameters ``2c`` (taps) ``+ 2c·c`` (``Q``) ``+ 2c·c`` (``K``)
``+ 2c·m`` (``V``) ``= 2c + 4c^2 + 2cm``; state ``c`` (conv cache) ``+ c m`` (``S``), independent of ``N`` and ``D``;
degree: none bounded independently of ``N`` (the recurrence is a polynomial whose degree grows with ``N``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._attention_codes import argmax_readout, check_lookup_sizes
from mqarkit.constructions._attention_ir import lookup_block, measured
from mqarkit.constructions._balanced_codes import balanced_code_width, balanced_codes
from mqarkit.constructions.api import Construction, Resources, register
from mqarkit.polynomials import CausalConv, DeltaRule, Layer, Model, Stream


def _check_beta(beta: object) -> int | Fraction | float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float, Fraction)) or not 0 < beta <= 1:
        raise ValueError(f"beta={beta!r}: must be a number in (0, 1] (an int, float or Fraction)")
    return beta


@register
class DeltaRuleLookup(Construction):
    """Shift + delta rule with one-hot keys and balanced 0/1 values (U10)."""

    name: ClassVar[str] = "delta_rule"
    claim_ids: ClassVar[tuple[str, ...]] = ("U10",)
    exact_backends: ClassVar[tuple[str, ...]] = ("float64", "exact")
    KNOBS: ClassVar[tuple[str, ...]] = ("beta",)

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        check_lookup_sizes(
            cls.name, cls.KNOBS, knobs, vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs
        )
        _check_beta(knobs.get("beta", 1))

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        c, m = vocab_size, balanced_code_width(max(vocab_size, 2))
        return Resources(2, 2 * c + m, 2 * c + 4 * c * c + 2 * c * m, c + c * m, None)

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "every clean MQAR instance (filler 'zero' or 'clean', any num_passes), every vocab_size >= 2, seq_len, "
            "num_kv_pairs with 4*num_kv_pairs <= seq_len, any beta in (0, 1]; margin >= 2 beta; exact under the "
            "float64 and exact backends"
        )

    @property
    def beta(self) -> int | Fraction | float:
        return self.knobs.get("beta", 1)

    @property
    def code_width(self) -> int:
        return balanced_code_width(self.vocab_size)

    def value_codebook(self) -> np.ndarray:
        """``a(u)`` for every token: (c, m) int64 in {0, 1}, ``m/2`` ones per row."""
        return (balanced_codes(self.vocab_size, self.code_width) + 1) // 2

    def readout_codebook(self) -> np.ndarray:
        """``b(u) = 2 a(u) - 1``: (c, m) int64 in {-1, +1}."""
        return balanced_codes(self.vocab_size, self.code_width)

    def _build_model(self) -> Model:
        c, m = self.vocab_size, self.code_width
        eye, zero = np.eye(c, dtype=np.int64), np.zeros((c, c), dtype=np.int64)
        taps = np.zeros((2, c), dtype=np.int64)
        taps[1] = 1  # h = X^1
        values = self.value_codebook()
        delta = DeltaRule(
            wq=np.vstack([eye, zero]),  # q_t = e_{x_t}
            wk=np.vstack([zero, eye]),  # k_s = e_{x_{s-1}}
            wv=np.vstack([values, np.zeros_like(values)]),  # v_s = a(x_s)
            beta=self.beta,
        )
        return Model(
            Stream.of(("token", c), ("prev_token", c), ("lookup", m)),
            (
                Layer(CausalConv(taps), reads=("token",), writes=("prev_token",)),
                Layer(delta, reads=("token", "prev_token"), writes=("lookup",)),
            ),
        )

    def lookup(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        """The ``lookup`` block: (n, N, m) float64."""
        return lookup_block(
            self.model, np.asarray(inputs, dtype=np.int64), np.eye(self.vocab_size, dtype=np.int64), backend
        )

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        return argmax_readout(self.lookup(inputs, backend), self.readout_codebook(), np.arange(self.vocab_size))[0]

    def measured_resources(self) -> Resources:
        return measured(self.model, self.seq_len)
