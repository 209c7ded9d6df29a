"""U1: softmax-free one-hot attention solves MQAR in two layers (theory.md §3.1 U1, §4.2, erratum 2).

Glossary (theory.md / [Z] Prop. 4.3):

- ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``; ``x_0 .. x_{N-1}`` the raw tokens;
- ``e_t`` the one-hot code of token ``t`` (width ``c``);
- ``t`` a query position, ``s`` a key/value position of the lookup; the *pair* at stream position ``s`` is
  ``(x_{s-1}, x_s)`` (key position ``j = s - 1``);
- ``Q, K, V`` the lookup's query, key and value projections; ``A(t)`` the positions query ``t`` may read.

Construction (stream blocks ``token`` (c), ``prev_token`` (c), ``lookup`` (c); width ``3c``):

1. *Shift* (``CausalConv``, taps ``(2, c)``, ``h = X^1``): ``prev_token[s] = e_{x_{s-1}}``, ``prev_token[0] = 0``
   (theory.md §4.1: the shift down by 1 is the impulse ``X^1``, erratum 3).
2. *Lookup* (``UnnormalisedAttention`` on ``[token; prev_token]``, mask ``strict``)::

       Q = [I_c; 0],  K = [0; I_c],  V = [I_c; 0]      (each (2c, c))
       q_t = e_{x_t},  k_s = e_{x_{s-1}},  v_s = e_{x_s}
       lookup[t] = sum_{s < t} <e_{x_t}, e_{x_{s-1}}> e_{x_s} = sum_{s < t, x_{s-1} = x_t} e_{x_s}.

   The score ``<q_t, k_s>`` is exactly the indicator ``[x_{s-1} = x_t]`` (the score identity, checked symbolically).

Readout: ``argmax_u lookup[t]_u`` over all ``c`` tokens (ties to the smallest id).

Correctness on clean instances (``filler`` ``"zero"`` or ``"clean"``, any number of passes ``P``). Let ``t`` be the
query of key ``k`` with value ``v``. The matches ``x_{s-1} = k`` with ``s < t`` are the positions right after an earlier
occurrence of ``k``: ``k`` occurs before ``t`` only in the ``P`` key-value blocks (fillers are never keys; every other
query is a different key), and each occurrence is followed by ``v``. Hence ``lookup[t] = P e_v``, whose unique argmax
is ``v``: the construction is exact, under the float64 and the exact backends alike (all weights are 0/1 and the
output is an integer vector). Nothing depends on ``N`` or ``D``: the claimed range is every valid spec.

Why the mask must be strict (erratum 2). The printed lookup is unmasked: it also reads pairs *after* the query. A
causal mask ``s <= t`` still reads the query's own pair ``(x_{t-1}, x_t)``, which matches whenever ``x_{t-1} = x_t``
(a filler equal to the key right before its query: possible under ``filler="random"``); it then adds ``e_{x_t} = e_k``
to ``P e_v`` and the readout is at best a tie (margin 0) that the smallest-id rule resolves to ``k < v``: a wrong
answer, while the strict mask still gives ``e_v``. ``mask="causal"`` is accepted as a knob only to exhibit this.

Resources: layers 2; width ``3c``; parameters ``2c`` (taps) ``+ 3 (2c) c`` (``Q, K, V``) ``= 6c^2 + 2c``, i.e.
``O(c^2)``, independent of ``N``; state ``c`` (the conv cache, ``k - 1 = 1`` step of ``c`` channels) ``+ 2cN``
(the KV cache, ``(d_k + d_v) N``); degree 3 in the one-hot input.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._attention_codes import argmax_readout, check_lookup_sizes, one_hot
from mqarkit.constructions._attention_ir import lookup_block, measured, onehot_lookup_model
from mqarkit.constructions.api import Construction, Resources, register
from mqarkit.polynomials import Model

MASKS = ("strict", "causal")


def onehot_lookup_reference(inputs: np.ndarray, vocab_size: int, mask: str = "strict") -> np.ndarray:
    """Direct reference of the lookup, from token comparisons (no weights): (n, N, c) int64 counts.

    ``out[b, t, u] = #{s in A(t), s >= 1 : x_{s-1} = x_t and x_s = u}`` with ``A(t) = {s < t}`` (strict) or
    ``{s <= t}`` (causal). inputs: (n, N) int64.
    """
    n, N = inputs.shape
    out = np.zeros((n, N, vocab_size), dtype=np.int64)
    s = np.arange(1, N)  # value positions with a previous token
    for t in range(N):
        visible = s[s < t] if mask == "strict" else s[s <= t]
        match = inputs[:, visible - 1] == inputs[:, t : t + 1]  # (n, |visible|)
        b, col = np.nonzero(match)
        np.add.at(out, (b, t, inputs[b, visible[col]]), 1)
    return out


@register
class AttentionOneHot(Construction):
    """Two-layer one-hot ``QK^T V`` lookup with a strict mask (theory.md U1)."""

    name: ClassVar[str] = "attention_onehot"
    claim_ids: ClassVar[tuple[str, ...]] = ("U1",)
    KNOBS: ClassVar[dict[str, Any]] = {"mask": "strict"}

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        check_lookup_sizes(
            cls.name, list(cls.KNOBS), knobs, vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs
        )
        mask = knobs.get("mask", "strict")
        if mask not in MASKS:
            raise ValueError(f"mask={mask!r}: must be one of {MASKS} ('causal' only to exhibit erratum 2)")

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        c, N = vocab_size, seq_len
        return Resources(layers=2, width=3 * c, parameters=6 * c * c + 2 * c, state_numbers=c + 2 * c * N, degree=3)

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "every clean MQAR instance (filler 'zero' or 'clean', any num_passes), every vocab_size >= 2, seq_len, "
            "num_kv_pairs with 4*num_kv_pairs <= seq_len; exact under the float64 and exact backends"
        )

    @property
    def mask(self) -> str:
        return self.knobs.get("mask", "strict")

    def _build_model(self) -> Model:
        return onehot_lookup_model(self.vocab_size, self.mask)

    def lookup(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        """The ``lookup`` block through the IR: (n, N, c) float64."""
        return lookup_block(self.model, np.asarray(inputs, dtype=np.int64), one_hot(self.vocab_size), backend)

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        pred, _ = argmax_readout(self.lookup(inputs, backend), one_hot(self.vocab_size), np.arange(self.vocab_size))
        return pred

    def measured_resources(self) -> Resources:
        return measured(self.model, self.seq_len)
