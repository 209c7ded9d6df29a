"""U2: softmax attention over sign codes solves MQAR at a proven inverse temperature (theory.md §3.1 U2, §4.2).

Glossary:

- ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``, ``x_0 .. x_{N-1}`` the tokens;
- ``m`` = ``code_width`` (default ``ceil(log2 c)``, at least 2); ``s(u) in {-1,+1}^m`` the sign code of token ``u``
  (its bits), ``c(u) = s(u)/sqrt(m)`` the unit code; ``ham(u, u')`` the Hamming distance of the codes;
- ``beta`` the inverse temperature; ``sigma_s = <c(x_t), c(x_{s-1})>`` the score of position ``s`` for query ``t``;
- ``M`` the matching positions (``x_{s-1} = x_t``), ``eps`` the softmax weight outside ``M``;
- ``delta`` the score gap between a match (1) and any non-match (``<= 1 - delta``).

Construction (stream blocks ``token`` (m), ``prev_token`` (m), ``lookup`` (m); the stream holds ``s(x)``, integers):

1. *Shift* into ``prev_token``: ``shift="conv"`` (default; the short convolution of the Zoology/Based hybrids):
   ``CausalConv`` with ``h = X^1``, exact, ``prev_token[0] = 0``. ``shift="positional"``: a ``SoftmaxAttention``
   with zero ``Q, K``, ``V = I``, mask ``strict`` and positional bias ``P[i, i-1] = 0``, ``P[i, j] = -L`` otherwise,
   ``L = ln(max(N-2, 1)) + 30``; row ``i >= 1`` puts weight ``>= 1 - eta`` on ``i - 1`` with
   ``eta <= (N-2) e^{-L} <= e^{-30}``, row 0 reads nothing (0).
2. *Lookup* (``SoftmaxAttention``, ``Q = [I; 0]``, ``K = [0; I]``, ``V = [I; 0]``, IR inverse temperature
   ``beta/m``): logits ``(beta/m) <s(x_t), s(x_{s-1})> = beta sigma_s``; ``lookup[t] = sum_s p_s s(x_s)``. The knob
   ``mask``: ``"strict"`` (default, ``s < t``) or ``"causal"`` (``s <= t``: the query's own pair ``(x_{t-1}, x_t)`` is
   visible too, as in Zoology's attention, where a token sees itself).

Readout: ``argmax_u <lookup[t], s(u)>`` over all ``c`` tokens. Margins below are in unit-code units (``/m``).

Theorem (margin). Let ``t`` be the query of key ``k`` with value ``v`` on a clean instance. Then the readout is
correct with margin ``>= (2/m)(1 - 2 eps)``; in particular it is correct whenever ``eps < 1/2``.

Proof. Scores: ``sigma = 1`` exactly on ``M`` (the positions right after the ``P`` occurrences of ``k`` in the
key-value blocks, all carrying value ``v``: see attention_onehot). For ``s`` with ``x_{s-1} != k``,
``sigma_s = 1 - 2 ham/m <= 1 - 2/m``; for ``s = 0`` the key is 0 and ``sigma_0 = 0 <= 1 - 2/m`` as ``m >= 2``. So
``delta = 2/m`` (conv shift). The output in unit codes is ``o = (1 - eps) c(v) + sum_{s not in M} p_s c(x_s)`` with
``sum p_s = eps``. For any ``u != v`` with ``h = ham(u, v) >= 1``, ``c(v) - c(u)`` is ``+-2/sqrt(m)`` on the ``h``
differing bits and 0 elsewhere, and every ``c(w)`` has entries ``+-1/sqrt(m)``, so
``|<c(w), c(v) - c(u)>| <= 2h/m = 1 - <c(v), c(u)>``. Hence
``<o, c(v) - c(u)> >= (1 - eps)(2h/m) - eps (2h/m) = (1 - 2 eps) 2h/m >= (2/m)(1 - 2 eps)``.  QED.

Corollary (sufficient beta). With ``K <= N - 2`` non-matching visible positions (strict: ``|A(t)| = t <= N - 1``, at
least one match; causal: ``|A(t)| = t + 1 <= N``, so ``K <= N - 1``), ``eps <= r/(|M| + r) <= r`` with
``r = sum_{s not in M} e^{-beta (1 - sigma_s)} <= K e^{-beta delta}``. So ``beta >= ln(4K)/delta`` gives
``eps <= 1/4`` and a readout margin ``>= 1/m``::

    sufficient_beta(N, m) = (m/2) ln(4 max(N - 2, 1))          (conv shift, delta = 2/m; strict mask)
    sufficient_beta(N, m) = (m/2) ln(4 max(N - 1, 1))          (causal mask)

which is ``O(m log N)`` (within theory.md's ``O(m log(N m))``). The causal mask changes nothing else on a clean
instance (or any query the oracle does not flag ambiguous): the query's own pair has key ``x_{t-1} != x_t`` there, so
it is one more non-matching position.

The sharp minimum (the adversarial family). The bound ``eps <= r/(|M| + r)`` with ``|M| >= 1`` gives more than the
theorem uses: at ``beta*`` every ``r <= 1/4``, so ``eps <= 1/5`` and the margin is ``>= (2/m)(3/5) = 1.2/m``, and this
is approached. :func:`worst_case_batch` builds, for ``c = 2^m``, the instance ``k v k' k' .. k' k k'`` (``D = 1``,
``v = k + c/2``, ``k' = k XOR 1``, the query at ``t = N - 2``): every visible non-matching position but ``s = 0`` (whose
key is the zero vector, ``sigma = 0``) has ``sigma = 1 - 2/m``, and every visible value (``k'``, ``k`` at ``s = 0``,
and the query ``k`` itself under the causal mask) has ``<c(w), c(v) - c(k)> = -2/m``. So for ``u = k``,
``<o, c(v) - c(k)> = (2/m)(1 - 2 eps) = (2/m)(1 - r)/(1 + r)`` with ``r = K e^{-2 beta/m} + e^{-beta}``, ``K = N - 4``
(strict) or ``N - 3`` (causal), and no ``u`` does worse (the theorem). No clean instance of even length can make ``r``
larger at the same ``beta`` (it has at most these ``K`` positions at the largest non-match score, and ``s = 0`` is
always at 0), so :func:`worst_case_margin` is the exact minimum over clean instances: at ``beta*`` it is
``(2/m)(1 - r)/(1 + r)`` with ``r = K/(4 max(N - 2, 1)) + e^{-beta*}`` (strict), decreasing towards ``1.2/m`` as
``N`` grows, above the proven ``1/m``. With the positional shift the keys are off by at most
``2 eta`` in norm, so scores move by at most ``2 eta`` and ``delta = 2/m - 4 eta``; values are exact, so the theorem
holds as stated with that ``delta``.

Tightness. If ``K`` visible pairs are ``(k', u)`` with ``ham(k', k) = 1`` and ``ham(u, v) = 1`` (legal clean
fillers: neither is a key or value of the example), then ``eps = K e^{-2 beta/m} / (1 + K e^{-2 beta/m})`` and
``<o, c(v) - c(u)> = (1 - 2 eps)(2/m)``: if these are the only non-matching visible pairs, the readout fails as soon as
``beta < (m/2) ln K``. The bound is thus tight up to the additive ``(m/2) ln 4``. :func:`decoy_batch` builds such
instances inside a full MQAR example, where the key-value block and the other queries are visible too and move the
threshold a little either way: a given draw may still be solved somewhat below ``(m/2) ln K``. What is checked (tests,
``mqarkit verify``) is that at ``0.9 (m/2) ln K`` some drawn decoy instance fails, and at ``beta*`` every one is solved.

Resources (conv shift): layers 2, width ``3m``, parameters ``2m + 6m^2``, state ``m + 2mN``. Positional shift:
parameters ``m + m + m^2 + N^2 + 6m^2`` (zero ``Q, K`` of shape ``(m, 1)``, ``V``, the ``N x N`` bias), state
``(1 + m) N + 2mN``. Degree: none (softmax).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._attention_codes import (
    argmax_readout,
    check_code_width,
    check_lookup_sizes,
    readout_margins,
    sign_bits,
    sign_code_width,
)
from mqarkit.constructions._attention_ir import lookup_block, measured
from mqarkit.constructions.api import Construction, Resources, register
from mqarkit.oracle import expected_answers
from mqarkit.polynomials import CausalConv, Layer, Model, SoftmaxAttention, Stream
from mqarkit.task import IGNORE_INDEX, MQARBatch, MQARSpec, generate

SHIFTS = ("conv", "positional")
MASKS = ("strict", "causal")
POSITIONAL_SLACK = 30.0  # L = ln(max(N-2, 1)) + 30: off-diagonal weight of the positional shift <= e^-30


def positional_eta(seq_len: int) -> float:
    """Bound on the weight the positional shift puts off ``i - 1``: ``(N-2) e^{-L} = e^{-30}`` (0 for ``N <= 2``)."""
    return math.exp(-POSITIONAL_SLACK) if seq_len > 2 else 0.0


def score_gap(code_width: int, seq_len: int, shift: str = "conv") -> float:
    """``delta``: ``2/m`` for the conv shift, ``2/m - 4 eta`` for the positional one."""
    gap = 2.0 / code_width
    return gap if shift == "conv" else gap - 4.0 * positional_eta(seq_len)


def non_matching_bound(seq_len: int, mask: str = "strict") -> int:
    """``K``: visible non-matching positions a query can have, ``max(N - 2, 1)`` (strict) or ``max(N - 1, 1)``
    (causal: the query's own pair is visible too)."""
    if mask not in MASKS:
        raise ValueError(f"mask={mask!r}: must be one of {MASKS}")
    return max(seq_len - (2 if mask == "strict" else 1), 1)


def sufficient_beta(seq_len: int, code_width: int, shift: str = "conv", mask: str = "strict") -> float:
    """``beta* = ln(4 K) / delta`` (``K`` = :func:`non_matching_bound`): at ``beta >= beta*`` every clean query (every
    query the oracle does not flag ambiguous) has margin ``>= 1/m``."""
    if seq_len < 2 or code_width < 2:
        raise ValueError(f"seq_len={seq_len}, code_width={code_width}: need seq_len >= 2 and code_width >= 2")
    return math.log(4 * non_matching_bound(seq_len, mask)) / score_gap(code_width, seq_len, shift)


def guaranteed_margin(code_width: int) -> float:
    """The margin the theorem guarantees at ``beta >= sufficient_beta``: ``(2/m)(1 - 2/4) = 1/m`` (unit codes)."""
    return 1.0 / code_width


def failure_beta(num_decoys: int, code_width: int) -> float:
    """``(m/2) ln K``: the threshold below which ``K`` one-bit decoys alone outweigh the match (the decoy instances of
    :func:`decoy_batch` are answered wrongly somewhat below it; see the module docstring)."""
    return 0.5 * code_width * math.log(num_decoys)


@register
class AttentionSignCode(Construction):
    """Softmax lookup over sign codes of width ``m`` at inverse temperature ``beta`` (theory.md U2)."""

    name: ClassVar[str] = "attention_signcode"
    claim_ids: ClassVar[tuple[str, ...]] = ("U2",)
    exact_backends: ClassVar[tuple[str, ...]] = ()
    KNOBS: ClassVar[tuple[str, ...]] = ("beta", "code_width", "shift", "mask")

    @classmethod
    def _knobs(cls, vocab_size: int, seq_len: int, knobs: dict[str, Any]) -> tuple[float, int, str]:
        m = knobs.get("code_width", sign_code_width(vocab_size))
        shift, mask = knobs.get("shift", "conv"), knobs.get("mask", "strict")
        beta = knobs.get("beta")
        if beta is None:
            usable = shift in SHIFTS and mask in MASKS and m >= 2 and seq_len >= 2
            beta = sufficient_beta(seq_len, m, shift, mask) if usable else 1.0
        return float(beta), m, shift

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        check_lookup_sizes(
            cls.name, cls.KNOBS, knobs, vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs
        )
        check_code_width(knobs.get("code_width", sign_code_width(vocab_size)), vocab_size)
        shift = knobs.get("shift", "conv")
        if shift not in SHIFTS:
            raise ValueError(f"shift={shift!r}: must be one of {SHIFTS}")
        mask = knobs.get("mask", "strict")
        if mask not in MASKS:
            raise ValueError(f"mask={mask!r}: must be one of {MASKS}")
        beta = knobs.get("beta")
        if beta is not None and (
            isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0
        ):
            raise ValueError(f"beta={beta!r}: must be a finite real number > 0")

    @classmethod
    def claimed_range_violation(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> str | None:
        """The proof covers ``beta >= sufficient_beta(N, m, mask=mask)`` only (the default ``beta`` is that bound)."""
        beta, m, shift = cls._knobs(vocab_size, seq_len, knobs)
        mask = knobs.get("mask", "strict")
        needed = sufficient_beta(seq_len, m, shift, mask)
        if beta < needed:
            return (
                f"beta={knobs['beta']!r}: the proof needs beta >= sufficient_beta(seq_len={seq_len}, "
                f"code_width={m}{'' if mask == 'strict' else f', mask={mask!r}'}) = {needed:.6g}"
            )
        return None

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        _, m, shift = cls._knobs(vocab_size, seq_len, knobs)
        N = seq_len
        lookup_params, lookup_state = 6 * m * m, 2 * m * N
        if shift == "conv":
            return Resources(2, 3 * m, 2 * m + lookup_params, m + lookup_state, None)
        return Resources(2, 3 * m, 2 * m + m * m + N * N + lookup_params, (1 + m) * N + lookup_state, None)

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "every clean MQAR instance (every query the oracle does not flag ambiguous) at beta >= "
            "sufficient_beta(N, m, mask=mask) (proved; readout margin >= 1/m), any vocab_size, seq_len, num_kv_pairs "
            "with 4*num_kv_pairs <= seq_len; float64 only (softmax)"
        )

    @property
    def beta(self) -> float:
        return self._knobs(self.vocab_size, self.seq_len, self.knobs)[0]

    @property
    def code_width(self) -> int:
        return self._knobs(self.vocab_size, self.seq_len, self.knobs)[1]

    @property
    def shift(self) -> str:
        return self._knobs(self.vocab_size, self.seq_len, self.knobs)[2]

    @property
    def mask(self) -> str:
        return self.knobs.get("mask", "strict")

    def codebook(self) -> np.ndarray:
        """``s(u)`` for every token: (c, m) int64."""
        return sign_bits(self.vocab_size, self.code_width)

    def _build_model(self) -> Model:
        beta, m, shift = self._knobs(self.vocab_size, self.seq_len, self.knobs)
        N = self.seq_len
        eye, zero = np.eye(m, dtype=np.int64), np.zeros((m, m), dtype=np.int64)
        stream = Stream.of(("token", m), ("prev_token", m), ("lookup", m))
        if shift == "conv":
            taps = np.zeros((2, m), dtype=np.int64)
            taps[1] = 1  # h = X^1
            first = CausalConv(taps)
        else:
            L = math.log(max(N - 2, 1)) + POSITIONAL_SLACK
            bias = np.full((N, N), -L)
            bias[np.arange(1, N), np.arange(N - 1)] = 0.0  # P[i, i-1] = 0
            zq = np.zeros((m, 1), dtype=np.int64)
            first = SoftmaxAttention(wq=zq, wk=zq, wv=eye, beta=1.0, mask="strict", positional_bias=bias)
        lookup = SoftmaxAttention(
            wq=np.vstack([eye, zero]),  # q_t = s(x_t)
            wk=np.vstack([zero, eye]),  # k_s = s(x_{s-1})
            wv=np.vstack([eye, zero]),  # v_s = s(x_s)
            beta=beta / m,  # (beta/m) <s, s'> = beta <c, c'>
            mask=self.mask,
        )
        return Model(
            stream,
            (
                Layer(first, reads=("token",), writes=("prev_token",)),
                Layer(lookup, reads=("token", "prev_token"), writes=("lookup",)),
            ),
        )

    def readout_scores(self, inputs: np.ndarray) -> np.ndarray:
        """``<lookup[t], c(u)>`` in unit-code units for every token ``u``: (n, N, c) float64."""
        out = lookup_block(self.model, np.asarray(inputs, dtype=np.int64), self.codebook(), "float64")
        _, scores = argmax_readout(out, self.codebook(), np.arange(self.vocab_size))
        return scores / self.code_width

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        return np.argmax(self.readout_scores(inputs), axis=-1).astype(np.int64)

    def measured_resources(self) -> Resources:
        return measured(self.model, self.seq_len)


def min_readout_margin(con: AttentionSignCode, batch: MQARBatch) -> float:
    """Measured ``min over query positions of score(answer) - max_{u != answer} score(u)`` (unit codes)."""
    scores = con.readout_scores(batch.inputs)  # (n, N, c)
    expected = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)  # (n, D)
    at_queries = np.take_along_axis(scores, batch.query_positions[..., None], axis=1)  # (n, D, c)
    return float(readout_margins(at_queries, np.arange(con.vocab_size), expected).min())


def decoy_batch(spec: MQARSpec, code_width: int, rng: np.random.Generator) -> tuple[MQARBatch, int]:
    """A clean instance built to fail below ``failure_beta(K, m)`` (approximately: see the module docstring):
    (batch of 1, K decoys).

    Layout: the key-value block; the queries of keys ``0 .. D-2`` in slots ``0 .. D-2``; then the decoy stretch
    ``k' u k' u ...`` up to position ``N - 3``; the query of key ``D-1`` (token ``k``, value ``v``) at ``N - 2``; a
    filler ``k'`` at ``N - 1``. ``k'`` differs from ``k`` in one bit, ``u`` from ``v`` in one bit, and neither is a key
    or value of the example, so the instance is ``clean``. ``K = (N - 4D)/2`` pairs ``(k', u)`` precede the query.
    """
    if spec.filler != "clean" or spec.num_passes != 1:
        raise ValueError(
            f"spec: decoy_batch needs filler='clean' and num_passes=1, got {spec.filler!r}, {spec.num_passes}"
        )
    N, D, c = spec.seq_len, spec.num_kv_pairs, spec.vocab_size
    if N - 4 * D < 2:
        raise ValueError(f"seq_len={N}: needs seq_len - 4*num_kv_pairs >= 2 for at least one decoy pair")
    for _ in range(100):
        base = generate(spec, 1, rng)
        keys, values = base.keys[0], base.values[0]
        used = set(keys.tolist()) | set(values.tolist())
        k, v = int(keys[-1]), int(values[-1])
        kd = [k ^ (1 << b) for b in range(code_width) if (k ^ (1 << b)) < c and (k ^ (1 << b)) not in used]
        ud = [v ^ (1 << b) for b in range(code_width) if (v ^ (1 << b)) < c and (v ^ (1 << b)) not in used]
        if kd and ud:
            break
    else:  # pragma: no cover - needs a vocabulary with almost every token used
        raise ValueError(f"vocab_size={c}: found no one-bit decoys outside the example's keys and values")
    k_decoy, u_decoy = kd[0], ud[0]
    x = np.empty(N, dtype=np.int64)
    x[0 : 2 * D : 2], x[1 : 2 * D : 2] = keys, values
    query_positions = np.empty(D, dtype=np.int64)
    query_positions[: D - 1] = 2 * D + 2 * np.arange(D - 1)
    query_positions[D - 1] = N - 2
    x[2 * D : 4 * D - 2 : 2] = keys[: D - 1]
    x[2 * D + 1 : 4 * D - 2 : 2] = k_decoy  # fillers after the early queries
    x[4 * D - 2 : N - 2 : 2] = k_decoy
    x[4 * D - 1 : N - 2 : 2] = u_decoy
    x[N - 2], x[N - 1] = k, k_decoy
    labels = np.full(N, IGNORE_INDEX, dtype=np.int64)
    labels[query_positions] = values
    key_positions = 2 * np.arange(D, dtype=np.int64)
    batch = MQARBatch(
        spec=spec,
        inputs=x[None],
        labels=labels[None],
        keys=keys[None].copy(),
        values=values[None].copy(),
        key_positions=key_positions[None],
        value_positions=key_positions[None] + 1,
        query_positions=query_positions[None],
    )
    return batch, (N - 4 * D) // 2


def worst_case_batch(spec: MQARSpec, mask: str = "strict") -> MQARBatch:
    """The adversarial instance of the module docstring: ``k v k' k' .. k' k k'`` (batch of 1), the query at
    ``N - 2``. Needs ``c = 2^m`` (so ``v = k + c/2`` and every one-bit neighbour are tokens), ``D = 1``, ``N`` even,
    ``filler="clean"`` (``k' = k XOR 1`` is neither the key nor the value). Deterministic: ``k = 2``."""
    c, N = spec.vocab_size, spec.seq_len
    if c & (c - 1) or c < 8:
        raise ValueError(f"vocab_size={c}: worst_case_batch needs a power of two >= 8 (one-bit neighbours are tokens)")
    if spec.num_kv_pairs != 1 or spec.filler != "clean" or spec.num_passes != 1 or N % 2:
        raise ValueError(
            "spec: worst_case_batch needs num_kv_pairs=1, filler='clean', num_passes=1 and an even seq_len"
        )
    if mask not in MASKS:
        raise ValueError(f"mask={mask!r}: must be one of {MASKS}")
    k = 2
    v, k_decoy = k + c // 2, k ^ 1
    x = np.full(N, k_decoy, dtype=np.int64)
    x[0], x[1], x[N - 2] = k, v, k
    labels = np.full(N, IGNORE_INDEX, dtype=np.int64)
    labels[N - 2] = v
    one = np.array([[0]], dtype=np.int64)
    return MQARBatch(spec=spec, inputs=x[None], labels=labels[None], keys=np.array([[k]]), values=np.array([[v]]),
                     key_positions=one, value_positions=one + 1, query_positions=np.array([[N - 2]]))  # fmt: skip


def worst_case_margin(seq_len: int, code_width: int, beta: float, mask: str = "strict") -> float:
    """The exact readout margin of :func:`worst_case_batch` at ``beta`` (unit codes): ``(2/m)(1 - r)/(1 + r)`` with
    ``r = K e^{-2 beta/m} + e^{-beta}``, ``K = N - 4`` (strict) or ``N - 3`` (causal)."""
    if seq_len < 4 or seq_len % 2 or code_width < 2:
        raise ValueError(f"seq_len={seq_len}, code_width={code_width}: needs an even seq_len >= 4 and code_width >= 2")
    decoys = seq_len - (4 if mask == "strict" else 3)
    r = decoys * math.exp(-2.0 * beta / code_width) + math.exp(-beta)
    return (2.0 / code_width) * (1.0 - r) / (1.0 + r)
