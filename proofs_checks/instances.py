"""Clean MQAR instances and an independent oracle, for checking constructions.

:func:`draw_instances` draws clean (or zero-filler) instances with the project's task module (``mqarkit.task.generate``,
``filler="clean"``) and checks the task's labels against :func:`oracle_labels`, which is written from the task's
definition alone (theory.md section 1.1), so a construction is compared with labels that two independent codes agree
on. A size the task refuses (e.g. its ``c > N`` rule) raises the task's ``ValueError``: nothing here substitutes
another generator.

:func:`clean_instances` is a second, independent generator in the same layout (keys from ``[1, c/2)``, values from
``[c/2, c)``, both without replacement; the block ``k_0 v_0 … k_{D-1} v_{D-1}``; every key once more as a query at a
distinct even position ``>= 2D``, uniform gaps; every other position the filler 0, never a key). The errata checks use
it where the statement is about the raw layout rather than about the task module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100


@dataclass(frozen=True)
class Instances:
    inputs: np.ndarray  # (n, N) int64 raw tokens
    labels: np.ndarray  # (n, N) int64, the value at query positions, IGNORE elsewhere


def oracle_labels(inputs: np.ndarray, num_kv_pairs: int) -> np.ndarray:
    """The answer the task specifies: at a position ``i >= 2D`` whose token is a key of the block, the value paired
    with that key in the block; ``IGNORE`` elsewhere. ``inputs`` (n, N) int -> (n, N) int64."""
    x = np.asarray(inputs, dtype=np.int64)
    n, length = x.shape
    d = num_kv_pairs
    if 2 * d > length:
        raise ValueError(f"num_kv_pairs={d}: needs 2*num_kv_pairs <= seq_len={length}")
    out = np.full((n, length), IGNORE, dtype=np.int64)
    for r in range(n):
        keys, values = x[r, 0 : 2 * d : 2], x[r, 1 : 2 * d : 2]
        if len(set(keys.tolist())) != d:
            raise ValueError(f"inputs[{r}]: keys of the block are not unique, the task is ambiguous (erratum E1)")
        table = dict(zip(keys.tolist(), values.tolist()))
        for i in range(2 * d, length):
            out[r, i] = table.get(int(x[r, i]), IGNORE)
    return out


def clean_instances(
    vocab_size: int, seq_len: int, num_kv_pairs: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clean instances drawn with ``rng``: (inputs, labels), each (n, N) int64."""
    c, length, d = vocab_size, seq_len, num_kv_pairs
    if d < 1:
        raise ValueError(f"num_kv_pairs={d}: must be >= 1")
    if length % 2 or 4 * d > length:
        raise ValueError(f"seq_len={length}: must be even with 4*num_kv_pairs={4 * d} <= seq_len")
    if d > c // 2 - 1:
        raise ValueError(f"num_kv_pairs={d}: needs num_kv_pairs <= vocab_size//2 - 1 = {c // 2 - 1} distinct keys")
    inputs = np.zeros((n, length), dtype=np.int64)
    slots = np.arange(2 * d, length, 2)
    for r in range(n):
        keys = rng.choice(np.arange(1, c // 2), size=d, replace=False)
        values = rng.choice(np.arange(c // 2, c), size=d, replace=False)
        inputs[r, 0 : 2 * d : 2], inputs[r, 1 : 2 * d : 2] = keys, values
        inputs[r, rng.choice(slots, size=d, replace=False)] = keys
    return inputs, oracle_labels(inputs, d)


def draw_instances(
    vocab_size: int, seq_len: int, num_kv_pairs: int, n: int, rng: np.random.Generator, filler: str = "clean"
) -> Instances:
    """``n`` instances from ``mqarkit.task.generate`` with ``filler`` ``"clean"`` (default) or ``"zero"`` (both free of
    ambiguous queries), their labels checked against :func:`oracle_labels`."""
    from mqarkit.task import MQARSpec, generate

    if filler not in ("clean", "zero"):
        raise ValueError(f"filler={filler!r}: draw_instances draws unambiguous instances, 'clean' or 'zero'")
    spec = MQARSpec(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, filler=filler)
    batch = generate(spec, n, rng)
    inputs = np.asarray(batch.inputs, dtype=np.int64)
    labels = np.asarray(batch.labels, dtype=np.int64)
    expected = oracle_labels(inputs, num_kv_pairs)
    if not np.array_equal(labels, expected):
        r, i = (int(v) for v in np.argwhere(labels != expected)[0])
        raise AssertionError(
            f"mqarkit.task labels disagree with the oracle at example {r}, position {i}: "
            f"{int(labels[r, i])} != {int(expected[r, i])}"
        )
    return Instances(inputs, labels)
