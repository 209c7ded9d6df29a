"""Hypothesis strategies for MQAR specs and instances, for property tests anywhere in the toolkit.

Usage::

    from hypothesis import given
    from mqarkit.strategies import instances, specs

    @given(instances(max_seq_len=32, fillers=("clean",)))
    def test_my_construction(inst):
        batch = inst.batch  # inst.spec, inst.seed, inst.batch
        ...

Every drawn spec is valid by construction (no ``assume``), so no example is wasted. Sizes shrink towards the
smallest spec (one pair, one pass, the shortest sequence, the smallest vocabulary), which keeps failures readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from mqarkit.task import FILLERS, MQARBatch, MQARSpec, generate


@st.composite
def specs(
    draw: st.DrawFn,
    *,
    max_seq_len: int = 64,
    max_num_kv_pairs: int | None = None,
    max_num_passes: int = 2,
    fillers: Sequence[str] = FILLERS,
    max_extra_vocab: int = 64,
    power_a: Sequence[float] = (0.01, 0.5, 1.0),
) -> MQARSpec:
    """Valid :class:`~mqarkit.task.MQARSpec` s with bounded sizes.

    max_seq_len:      largest ``N`` (even, >= 4); ``N`` is drawn from the even lengths that fit the drawn ``D``, ``P``.
    max_num_kv_pairs: largest ``D`` (default: as many as ``max_seq_len`` allows with one pass).
    max_num_passes:   largest ``P`` (>= 1); ``P`` is capped further so that ``2D(P+1) <= N`` stays possible.
    fillers:          the filler modes to draw from (a non-empty subset of ``"zero"``, ``"random"``, ``"clean"``).
    max_extra_vocab:  ``c`` is drawn from ``[max(N+1, 2D+2), N + 1 + max_extra_vocab]``, the smallest legal
                      vocabularies, where collisions (and so ambiguity under ``"random"``) are most likely.
    power_a:          the gap-law exponents to draw from (all > 0).
    """
    if max_seq_len < 4 or max_seq_len % 2:
        raise ValueError(f"max_seq_len={max_seq_len}: must be an even int >= 4")
    if max_num_passes < 1:
        raise ValueError(f"max_num_passes={max_num_passes}: must be >= 1")
    if not fillers or any(f not in FILLERS for f in fillers):
        raise ValueError(f"fillers={tuple(fillers)!r}: must be a non-empty subset of {FILLERS}")
    if max_extra_vocab < 0:
        raise ValueError(f"max_extra_vocab={max_extra_vocab}: must be >= 0")
    if not power_a or any(not a > 0 for a in power_a):
        raise ValueError(f"power_a={tuple(power_a)!r}: must be a non-empty sequence of numbers > 0")
    d_cap = max_seq_len // 4 if max_num_kv_pairs is None else min(max_num_kv_pairs, max_seq_len // 4)
    if d_cap < 1:
        raise ValueError(f"max_num_kv_pairs={max_num_kv_pairs}: must be >= 1")
    D = draw(st.integers(1, d_cap))
    P = draw(st.integers(1, min(max_num_passes, max_seq_len // (2 * D) - 1)))
    N = 2 * draw(st.integers(D * (P + 1), max_seq_len // 2))
    c_min = max(N + 1, 2 * D + 2)
    c = draw(st.integers(c_min, c_min + max_extra_vocab))
    return MQARSpec(
        vocab_size=c,
        seq_len=N,
        num_kv_pairs=D,
        power_a=draw(st.sampled_from(tuple(power_a))),
        filler=draw(st.sampled_from(tuple(fillers))),
        num_passes=P,
    )


@dataclass(frozen=True, eq=False)
class Instance:
    """A drawn spec, the seed of the ``numpy.random.Generator`` that generated the batch, and the batch."""

    spec: MQARSpec
    seed: int
    batch: MQARBatch

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: enough to regenerate it
        return f"Instance(spec={self.spec!r}, seed={self.seed}, num_examples={self.batch.num_examples})"


@st.composite
def instances(
    draw: st.DrawFn,
    *,
    spec: st.SearchStrategy[MQARSpec] | None = None,
    max_num_examples: int = 4,
    **spec_kwargs: object,
) -> Instance:
    """An :class:`Instance`: a spec (from ``spec``, default ``specs(**spec_kwargs)``) and a batch of 1 to
    ``max_num_examples`` examples generated with ``np.random.default_rng(seed)``, ``seed`` drawn by hypothesis.

    ``spec_kwargs`` are passed to :func:`specs` (``max_seq_len``, ``fillers``, ...) when ``spec`` is not given.
    """
    if max_num_examples < 1:
        raise ValueError(f"max_num_examples={max_num_examples}: must be >= 1")
    drawn = draw(spec if spec is not None else specs(**spec_kwargs))  # type: ignore[arg-type]
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, max_num_examples))
    return Instance(spec=drawn, seed=seed, batch=generate(drawn, n, np.random.default_rng(seed)))
