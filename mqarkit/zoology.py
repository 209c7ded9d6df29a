"""A generator that reproduces zoology's ``multiquery_ar`` draw for draw, without touching a global RNG.

Reference: HazyResearch/zoology, ``zoology/data/associative_recall.py`` (golden outputs: ``shared/golden/zoology``).

The reference seeds NumPy's global legacy RNG with ``numpy.random.seed`` and then draws, in this order:

1. keys: per example ``b = 0..n-1``, ``choice([1, c//2), size=D, replace=False)`` (legacy ``choice`` without ``p``
   takes the first ``D`` entries of a full permutation of the pool);
2. values: the same, over ``[c//2, c)``;
3. gap indices: per example, ``choice(range(S), size=D, replace=False, p=p)`` with ``S = (N - 2D) / 2`` and
   ``p = a * (1..S)^(a-1)`` normalised; key ``j`` is queried at position ``2D + 2 * gaps[b, j]``;
4. only with ``random_non_queries``: one ``torch.randint(c, size=(n, N))`` whose entries replace every 0 of the input.

Steps 1-3 use a local ``np.random.RandomState(seed)``, whose legacy stream is identical to the global one after
``numpy.random.seed``, so keys, values, query positions and labels match the reference exactly (and, as in the
reference, the draws for a seed depend on ``num_examples``). Step 4 cannot be reproduced: the reference draws it from
torch's global generator, which it never seeds. Here the filler tokens are drawn instead from the same ``RandomState``,
continuing after step 3, with ``randint(0, c, size=(n, N))`` -- the same law (uniform over ``[0, c)``, so possibly 0, a
key or a value of the example) at the same positions, with different tokens.

This module exists for compatibility tests and for reproducing published numbers; new work should use
:func:`mqarkit.task.generate`, which is vectorised, takes a ``numpy.random.Generator``, and has a ``clean`` mode.
"""

from __future__ import annotations

import numpy as np

from mqarkit.checks import check_bool, check_int
from mqarkit.task import MQARBatch, MQARSpec, assemble_batch, check_batch_size


def _reference_draws(
    rs: np.random.RandomState, vocab_size: int, num_examples: int, num_kv_pairs: int, num_slots: int, power_a: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-3 of the module docstring: keys, values, gap indices, each (n, D) int64, in the reference's order."""
    half = vocab_size // 2
    key_pool = np.arange(1, half)
    value_pool = np.arange(half, vocab_size)
    keys = np.array([rs.choice(key_pool, size=num_kv_pairs, replace=False) for _ in range(num_examples)])
    values = np.array([rs.choice(value_pool, size=num_kv_pairs, replace=False) for _ in range(num_examples)])
    # The exact float expression of the reference: the legacy choice compares uniforms against the cdf of p.
    p = power_a * np.arange(1, num_slots + 1) ** (power_a - 1)
    p = p / p.sum()
    slot_pool = np.arange(num_slots)
    gaps = np.array([rs.choice(slot_pool, size=num_kv_pairs, replace=False, p=p) for _ in range(num_examples)])
    shape = (num_examples, num_kv_pairs)
    return keys.reshape(shape).astype(np.int64), values.reshape(shape).astype(np.int64), gaps.reshape(shape)


def zoology_mqar_batch(
    *,
    vocab_size: int,
    num_examples: int,
    input_seq_len: int,
    seed: int,
    num_kv_pairs: int,
    power_a: float = 0.01,
    random_non_queries: bool = True,
) -> MQARBatch:
    """The reference instances as an :class:`~mqarkit.task.MQARBatch` (spec filler ``"random"`` or ``"zero"``).

    Validation: the reference's assertions (``N`` even, ``c > N``, ``4D <= N``) and the rest of
    :class:`~mqarkit.task.MQARSpec`'s rules, raised as ``ValueError`` naming the field (``input_seq_len`` for the
    spec's ``seq_len``); ``random_non_queries`` must be a bool (the reference reads any truthy value as True);
    ``seed`` must be an int in ``[0, 2^32)`` (what ``np.random.seed`` accepts); the batch must fit in memory.
    """
    random_non_queries = check_bool("random_non_queries", random_non_queries)
    try:
        spec = MQARSpec(
            vocab_size=vocab_size,
            seq_len=input_seq_len,
            num_kv_pairs=num_kv_pairs,
            power_a=power_a,
            filler="random" if random_non_queries else "zero",
        )
    except ValueError as err:  # the spec calls it seq_len; the caller wrote input_seq_len
        message = str(err)
        raise ValueError("input_" + message if message.startswith("seq_len=") else message) from err
    n = check_batch_size(spec, num_examples)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    N, D = spec.seq_len, spec.num_kv_pairs
    rs = np.random.RandomState(int(seed))
    keys, values, gaps = _reference_draws(rs, spec.vocab_size, n, D, spec.num_query_slots, spec.power_a)
    filler = None
    if random_non_queries:  # stands in for the reference's torch.randint over the whole (n, N) grid
        filler = rs.randint(0, spec.vocab_size, size=(n, N)).astype(np.int64)[:, 2 * D :]
    return assemble_batch(spec, keys, values, gaps, filler)


def zoology_mqar(
    *,
    vocab_size: int,
    num_examples: int,
    input_seq_len: int,
    seed: int,
    num_kv_pairs: int,
    power_a: float = 0.01,
    random_non_queries: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)``, each (num_examples, input_seq_len) int64, as zoology's ``multiquery_ar`` returns them.

    Same arguments and defaults as the reference (``num_passes`` is left out: the reference fails for any value but
    1; use :func:`mqarkit.task.generate` for multi-pass contexts). Exact except for the filler tokens of
    ``random_non_queries=True`` (see the module docstring).
    """
    batch = zoology_mqar_batch(
        vocab_size=vocab_size,
        num_examples=num_examples,
        input_seq_len=input_seq_len,
        seed=seed,
        num_kv_pairs=num_kv_pairs,
        power_a=power_a,
        random_non_queries=random_non_queries,
    )
    return batch.inputs, batch.labels
