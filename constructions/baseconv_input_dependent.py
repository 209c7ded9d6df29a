"""Input-dependent BaseConv solving MQAR in two layers ([Z] Thm 4.5, U3), in raw-token form.

Glossary ([Z], theory.md §1.1, §4.3): ``c`` = ``vocab_size``, ``N`` = ``seq_len`` (raw tokens), ``D`` =
``num_kv_pairs``, ``t`` = number of lag channel groups (interaction distances), ``e(x)`` the one-hot code (width ``c``),
``Q = K = V = e(x)``, ``shiftDown(·, s)`` the impulse filter ``X^s``, ``m_s = Q ⊙ shiftDown(K, s)``,
``E_s = m_s · 1_{c×c}``, ``z_s = E_s ⊙ shiftDown(V, s - 1)``, ``G_s`` the position gate (query slot at ``i``, key slot
at ``i - s``; erratum 6), ``A(s) = #{i : x_i = x_{i-s}}`` the one-hot autocorrelation; with ``encoding="sign"``,
``m = ⌈log2 c⌉`` and ``a(x) ∈ {-1,+1}^m`` the sign code.

The model is the one-hot lag lookup of :mod:`._baseconv_onehot_lookup` (derivation there): two BaseConv layers,
``out[i] = sum_{s in S} G_s[i]·<e(x_i), e(x_{i-s})>·e(x_{i-s+1})``, and the argmax readout. In raw-token form the
value follows its key by one position, so the value shift is ``s - 1`` where the key shift is ``s`` (erratum 5; in the
triple form these are ``3Δ + 1`` and ``3Δ + 2``).

*Input-dependent*: the lag set ``S`` (``|S| = t``) is chosen from each input, so ``predict`` builds one model per
example (the template ``self.model`` is the model for the even lags ``2, 4, .., 2t``; every per-example model has the
same shapes, hence the same resources). The knob ``lags``:

- ``"exact"`` (default): the lags this input needs (query slot minus key slot of every query), padded to ``t`` with the
  smallest unused even lags (a lag never contributes a wrong term: its gate admits only key slots, and at most one key
  slot holds the query's token). Every query slot whose token is a key counts, scored or not: with ``zero`` / ``clean``
  filler these are the ``D`` queries, so ``t >= D`` suffices and the construction is exact on every such instance;
  with ``random`` filler an unused slot may hold a key too, and an input needing more than ``t`` lags raises
  ``ValueError`` (``t = (N - 2D)/2``, the number of query slots, always suffices).
- ``"autocorrelation"``: the ``t`` lags with the largest ``A(s)``, ``1 <= s < N`` (ties towards smaller lags), as [Z]
  proposes. Exact when these cover the needed lags, which nothing guarantees (erratum 7): with zero filler every small
  lag collects many filler-filler matches and a long key-query distance is easily missed; then the query reads 0.

Resources (dense storage, ``d = 2tc``; :func:`mqarkit.constructions._baseconv_onehot_lookup.onehot_lookup_parameters`):
layers 2, width ``2c + d``, parameters ``2cd + 2d² + 2Nd + d``, state ``(N - 1)·d`` (layer A's length-``N`` filters),
degree 3. [Z]'s ``O(t·N·c)`` counts the filters and biases (``2Nd = 4tNc``); the dense ``W`` adds ``2d² = 8t²c²``
(erratum 9), and the non-zero entries number ``t·(c² + 7c) + c·Σ_s |supp G_s|``: the all-ones broadcast ``1_{c×c}``
alone is ``t·c²``, a factor ``c/N`` above ``t·N·c`` at ``c > N``.

Two knobs meet the statement's size in non-zero weights (:func:`nonzero_parameters_for`, per input; the largest over
all lag sets is :func:`max_nonzero_parameters`):

- ``broadcast="factored"`` (one-hot): ``1_{c×c} = 1_c 1_cᵀ`` as two layers (sum the match, then copy it;
  :mod:`._baseconv_onehot_lookup`): 3 layers, ``t·(11c + 1) + c·Σ_s |supp G_s|`` non-zeros. Since
  ``|supp G_s| <= D <= N/4``, that is at most ``t·c·(11 + 1/c + N/4) <= 4·t·N·c`` for ``N >= 4``: ``O(t·N·c)`` with
  ``O(1)`` layers, U3 as stated (in non-zeros; dense storage still pays ``d²``, erratum 9);
- ``encoding="sign"``: the sign-code lookup of :mod:`._baseconv_sign_lookup` over the ``t`` chosen lags (gates per
  lag): ``1 + ⌈log2(m + 1)⌉`` layers, ``m = ⌈log2 c⌉``, and per lag ``O(m log m)`` non-zeros plus ``m·|supp G_s|``:
  ``O(t·N·log c)``, below the statement's size, paid with ``O(log log c)`` layers instead of ``O(1)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mqarkit.constructions._baseconv_layout import lag_gate, needed_lags, top_autocorrelation_lags
from mqarkit.constructions._baseconv_mqar import check_mqar_sizes
from mqarkit.constructions._baseconv_onehot_lookup import (
    BROADCASTS,
    onehot_lookup_nonzeros,
    onehot_lookup_parameters,
    onehot_lookup_weights,
)
from mqarkit.constructions._baseconv_sign_lookup import (
    gate_depth,
    sign_codebook,
    sign_lookup_nonzeros,
    sign_lookup_parameters,
    sign_lookup_weights,
    sign_width,
)
from mqarkit.constructions._baseconv_stack import (
    argmax_predict,
    as_ir_model,
    measured_resources,
    nonzero_parameters,
    run_ir_model,
)
from mqarkit.constructions.api import Construction, Resources, register

LAG_RULES = ("exact", "autocorrelation")
ENCODINGS = ("onehot", "sign")
KNOBS = ("lags", "t", "encoding", "broadcast")


def pad_lags(lags: list[int], t: int, seq_len: int) -> list[int]:
    """``lags`` followed by the smallest unused even lags in ``[2, N)`` up to ``t`` in all (``len(lags) <= t``).

    Key slots and query slots are both even positions, so only even lags can ever match; padding with them keeps
    every lag group live (an odd lag's gate is identically zero)."""
    if len(lags) > t:
        raise ValueError(f"inputs: an example needs {len(lags)} lags {lags} but t={t} lag groups are built")
    fill = [s for s in range(2, seq_len, 2) if s not in set(lags)][: t - len(lags)]
    return list(lags) + fill


def choose_lags(tokens: np.ndarray, *, num_kv_pairs: int, vocab_size: int, rule: str, t: int) -> list[int]:
    """The ``t`` lags the construction uses on ``tokens`` (N,) under ``rule``."""
    n = int(np.asarray(tokens).shape[0])
    if rule == "exact":
        return pad_lags(needed_lags(tokens, num_kv_pairs), t, n)
    return top_autocorrelation_lags(tokens, vocab_size, t)


@register
class BaseConvInputDependent(Construction):
    """Two BaseConv layers whose filters are the lags chosen from the input (one model per example)."""

    name = "baseconv_input_dependent"
    claim_ids: ClassVar[tuple[str, ...]] = ("U3",)
    exact_backends: ClassVar[tuple[str, ...]] = ("float64", "exact")

    @classmethod
    def _knobs(cls, num_kv_pairs: int, knobs: dict[str, Any]) -> tuple[str, int]:
        return knobs.get("lags", "exact"), knobs.get("t", num_kv_pairs)

    @classmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - set(KNOBS))
        if unknown:
            raise ValueError(
                f"knobs {unknown}: unknown for {cls.name!r}; the knobs are lags in {LAG_RULES}, t, encoding in "
                f"{ENCODINGS} and broadcast in {BROADCASTS}"
            )
        encoding, broadcast = knobs.get("encoding", "onehot"), knobs.get("broadcast", "dense")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding={encoding!r}: must be one of {ENCODINGS}")
        if broadcast not in BROADCASTS:
            raise ValueError(f"broadcast={broadcast!r}: must be one of {BROADCASTS}")
        if encoding == "sign" and broadcast != "dense":
            raise ValueError(f"broadcast={broadcast!r}: only the one-hot lookup broadcasts a match (encoding='sign')")
        check_mqar_sizes(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs)
        rule, t = cls._knobs(num_kv_pairs, knobs)
        if rule not in LAG_RULES:
            raise ValueError(f"lags={rule!r}: must be one of {LAG_RULES}")
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= seq_len - 1:
            raise ValueError(f"t={t!r}: must be an int with 1 <= t <= seq_len - 1 = {seq_len - 1}")
        if rule == "exact" and t < num_kv_pairs:
            raise ValueError(
                f"t={t}: lags='exact' needs t >= num_kv_pairs={num_kv_pairs} (an input needs up to D lags)"
            )

    @classmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        _, t = cls._knobs(num_kv_pairs, knobs)
        if knobs.get("encoding", "onehot") == "sign":
            m = sign_width(vocab_size)
            d = 2 * m * t
            return Resources(
                layers=gate_depth(m, "per_lag"),
                width=2 * m + d,
                parameters=sign_lookup_parameters(seq_len, vocab_size, t),
                state_numbers=(seq_len - 1) * d,
                degree=2 * m + 1,
            )
        broadcast = knobs.get("broadcast", "dense")
        d = 2 * t * vocab_size
        return Resources(
            layers=2 if broadcast == "dense" else 3,
            width=2 * vocab_size + d,
            parameters=onehot_lookup_parameters(seq_len, vocab_size, t, broadcast),
            state_numbers=(seq_len - 1) * d,
            degree=3,
        )

    @classmethod
    def nonzero_parameters_for(
        cls, lags: list[int], *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any
    ) -> int:
        """Closed form: non-zero weights of the per-example model with these lags."""
        if knobs.get("encoding", "onehot") == "sign":
            return sign_lookup_nonzeros(seq_len, num_kv_pairs, vocab_size, lags)
        return onehot_lookup_nonzeros(seq_len, num_kv_pairs, vocab_size, lags, knobs.get("broadcast", "dense"))

    @classmethod
    def max_nonzero_parameters(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> int:
        """The largest :meth:`nonzero_parameters_for` over every set of ``t`` lags in ``[1, N)``: the per-lag cost is a
        constant plus a multiple of ``|supp G_s|``, so the worst set is the ``t`` lags of largest support."""
        cls.validate_sizes(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, **knobs)
        _, t = cls._knobs(num_kv_pairs, knobs)
        support = {s: int(np.count_nonzero(lag_gate(seq_len, num_kv_pairs, s))) for s in range(1, seq_len)}
        worst = sorted(support, key=lambda s: (-support[s], s))[:t]
        return cls.nonzero_parameters_for(
            worst, vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, **knobs
        )

    @classmethod
    def claimed_range(cls) -> str:
        return (
            "lags='exact' (t >= D): every instance of the raw-token layout with zero or clean filler (random filler: "
            "whenever at most t query slots hold keys), N even, 4D <= N, "
            "D <= c//2 - 1, c > N; lags='autocorrelation': only the instances whose top-t autocorrelation lags cover "
            "every query's key distance (not guaranteed: erratum 7)"
        )

    @property
    def rule(self) -> str:
        return self._knobs(self.num_kv_pairs, self.knobs)[0]

    @property
    def t(self) -> int:
        return int(self._knobs(self.num_kv_pairs, self.knobs)[1])

    @property
    def encoding(self) -> str:
        return self.knobs.get("encoding", "onehot")

    @property
    def broadcast(self) -> str:
        return self.knobs.get("broadcast", "dense")

    def codebook(self) -> np.ndarray:
        """The token codes the model reads and the readout compares with: one-hot ``(c, c)`` or sign ``(c, m)``."""
        return sign_codebook(self.vocab_size) if self.encoding == "sign" else np.eye(self.vocab_size, dtype=np.int64)

    def _weights(self, lags: list[int]) -> Any:
        if self.encoding == "sign":
            return sign_lookup_weights(self.seq_len, self.num_kv_pairs, self.vocab_size, lags)
        return onehot_lookup_weights(self.seq_len, self.num_kv_pairs, self.vocab_size, lags, self.broadcast)

    def lags_for(self, tokens: np.ndarray) -> list[int]:
        """The lags of the per-example model for ``tokens`` (N,)."""
        return choose_lags(tokens, num_kv_pairs=self.num_kv_pairs, vocab_size=self.vocab_size, rule=self.rule, t=self.t)

    def model_for(self, tokens: np.ndarray) -> Any:
        """The per-example IR model (weights depend on ``tokens`` through the chosen lags)."""
        return as_ir_model(self._weights(self.lags_for(tokens)), self.name)

    def _build_model(self) -> Any:
        lags = pad_lags([], self.t, self.seq_len)  # the even lags 2, 4, .., 2t: every group can match
        return as_ir_model(self._weights(lags), self.name)

    def output(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        """``inputs`` (n, N) int -> (n, N, w): each example through its own model's ``out`` block, via the IR."""
        inputs = np.asarray(inputs)
        book = self.codebook()
        codes = book[inputs]
        outs = [run_ir_model(self.model_for(x), code, backend) for x, code in zip(inputs, codes)]
        return np.stack(outs) if outs else np.zeros((0, self.seq_len, book.shape[1]))

    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        if inputs.shape[0] == 0:
            return np.zeros((0, self.seq_len), dtype=np.int64)
        return argmax_predict(self.output(inputs, backend), self.codebook(), backend)

    def nonzero_parameters(self, tokens: np.ndarray) -> int:
        """Measured: non-zero entries of the per-example model for ``tokens``."""
        return nonzero_parameters(self.model_for(tokens))

    def measured_resources(self) -> Resources:
        return measured_resources(self.model, self.seq_len)
