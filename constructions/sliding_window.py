"""U8: sliding-window attention recalls a query iff its key-value pair lies in the window (theory.md §3.1 U8).

Glossary:

- ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``, ``P`` = ``num_passes``;
- ``w`` = ``window``: query ``t`` reads positions ``t - w < s <= t`` (exactly ``w`` keys, ``mqarkit.polynomials``
  mask ``"window"``; zoology's reference admits ``w + 1``);
- ``S = (N - 2DP)/2`` query slots; key ``j`` is queried at ``t_j = 2DP + 2 g_j`` with slot ``g_j`` its draw of the
  successive sampling ``p(g) ~ a (g+1)^(a-1)`` (``mqarkit.task``);
- ``s*_j = 2D(P-1) + 2j + 1`` the value position of key ``j`` in the last pass; ``Delta_j = t_j - s*_j``.

Construction: U1 (``attention_onehot``) with the lookup's mask restricted to the window: shift ``h = X^1`` into
``prev_token``, then ``UnnormalisedAttention`` with ``Q = [I; 0]``, ``K = [0; I]``, ``V = [I; 0]``, mask ``window``;
readout ``argmax_u lookup[t]_u`` over all ``c`` tokens (ties to the smallest id).

Recall condition (exact). On a clean instance, ``lookup[t_j] = n_j e_{v_j}`` where ``n_j`` counts the passes whose
value position lies in ``(t_j - w, t_j]`` (the pair at ``s = t_j`` is ``(filler or value, k_j)``, never a match; no
filler is a key). If ``n_j >= 1`` the argmax is ``v_j``; if ``n_j = 0`` the output is 0 and the readout answers
token 0, never a value (values are ``>= c//2 >= 1``). The last pass is the closest, so key ``j`` is recalled iff
``Delta_j = 2D + 2 g_j - 2j - 1 <= w - 1``, i.e. iff ``g_j <= floor((w - 2D + 2j)/2)`` (independent of ``P``).

Expected accuracy. With ``R[j, g] = P(draw j is slot g)`` (``_attention_gaps.rank_probabilities``; an exact integral
identity evaluated by a stated quadrature, error reported)::

    E[accuracy] = (1/D) sum_j sum_{g <= floor((w - 2D + 2j)/2)} R[j, g].

Everything but the quadrature is exact; the quadrature's error is ``max_row_error`` (about ``1e-13`` in practice).

Resources: layers 2, width ``3c``, parameters ``6c^2 + 2c``, state ``c + 2c min(w, N)``, degree 3.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._attention_codes import argmax_readout, check_lookup_sizes, one_hot
from mqarkit.constructions._attention_gaps import rank_probabilities
from mqarkit.constructions._attention_ir import lookup_block, measured, onehot_lookup_model
from mqarkit.constructions.api import Construction, Resources, register
from mqarkit.polynomials import Model
from mqarkit.task import MQARBatch, MQARSpec


def _check_window(window: object) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window={window!r}: must be an int >= 1")
    return int(window)


def recall_thresholds(spec: MQARSpec, window: int) -> np.ndarray:
    """``floor((w - 2D + 2j)/2)`` for ``j < D``: key ``j`` is recalled iff its slot is ``<=`` this: (D,) int64."""
    w, D = _check_window(window), spec.num_kv_pairs
    return (w - 2 * D + 2 * np.arange(D, dtype=np.int64)) // 2


def recalled(batch: MQARBatch, window: int) -> np.ndarray:
    """Per query, whether the recall condition holds: ``Delta = t - s* <= w - 1`` with ``s*`` the last-pass value
    position: (n, D) bool."""
    w = _check_window(window)
    return (batch.query_positions - batch.value_positions) <= w - 1


def expected_accuracy(spec: MQARSpec, window: int) -> float:
    """Expected MQAR accuracy of the window-``w`` construction under ``spec``'s generator (clean or zero filler)."""
    if spec.filler == "random":
        raise ValueError("spec.filler='random': fillers can repeat keys (ambiguous queries); use 'zero' or 'clean'")
    R = _rank_probabilities_to(spec, RANK_TOLERANCE)  # (D, S)
    thr = recall_thresholds(spec, window)
    slots = np.arange(spec.num_query_slots)
    inside = slots[None, :] <= thr[:, None]  # (D, S)
    return float((R * inside).sum() / spec.num_kv_pairs)


RANK_TOLERANCE = 1e-9  # max |sum_g R[i, g] - 1| accepted from the quadrature of rank_probabilities


@functools.lru_cache(maxsize=64)
def _rank_probabilities_to(spec: MQARSpec, tolerance: float) -> np.ndarray:
    """``rank_probabilities`` with the quadrature step halved from 0.2 until every row sums to 1 within ``tolerance``
    (the trapezoid rule converges exponentially in ``1/step``; larger ``(S, D)`` need finer steps: e.g. step 0.05 at
    ``(N, D) = (1024, 256)``). Raises ``ArithmeticError`` if even step 0.0125 does not reach it."""
    step = 0.2
    while True:
        R, err = rank_probabilities(spec.gap_probabilities(), spec.num_kv_pairs, step=step)
        if err <= tolerance:
            return R
        if step <= 0.0125:
            raise ArithmeticError(f"rank_probabilities: quadrature row error {err:.2e} > {tolerance} at step {step}")
        step /= 2


def predicted_sliding_window_accuracy(window: int, seq_len: int, num_kv_pairs: int, power_a: float = 0.01) -> float:
    """:func:`expected_accuracy` for the zero-filler generator of the given sizes (the vocabulary does not enter: the
    recall condition depends only on positions). Used by ``mqarkit plot`` to draw U8's predicted curve."""
    vocab_size = max(2 * seq_len + 2, 2 * num_kv_pairs + 4)  # any size the spec accepts; the answer does not use it
    spec = MQARSpec(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, power_a=power_a)
    return expected_accuracy(spec, window)


@register
class SlidingWindowAttention(Construction):
    """The U1 lookup restricted to the last ``window`` positions (theory.md U8)."""

    name: ClassVar[str] = "sliding_window"
    claim_ids: ClassVar[tuple[str, ...]] = ("U8",)
    KNOBS: ClassVar[tuple[str, ...]] = ("window",)

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        check_lookup_sizes(
            cls.name, cls.KNOBS, knobs, vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs
        )
        if "window" not in knobs:
            raise ValueError("window: the sliding-window construction needs window=w (an int >= 1)")
        _check_window(knobs["window"])

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        c, w = vocab_size, int(knobs["window"])
        return Resources(2, 3 * c, 6 * c * c + 2 * c, c + 2 * c * min(w, seq_len), 3)

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "recalls exactly the queries whose key-value pair lies in the window (clean instances, any sizes); "
            "accuracy = expected_accuracy(spec, window) in expectation"
        )

    @property
    def window(self) -> int:
        return int(self.knobs["window"])

    def _build_model(self) -> Model:
        return onehot_lookup_model(self.vocab_size, "window", self.window)

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        out = lookup_block(self.model, inputs, one_hot(self.vocab_size), backend)
        return argmax_readout(out, one_hot(self.vocab_size), np.arange(self.vocab_size))[0]

    def measured_resources(self) -> Resources:
        return measured(self.model, self.seq_len)
