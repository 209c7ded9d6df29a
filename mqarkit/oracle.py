"""The MQAR oracle: which answer is expected where, the brute-force reading of recall, ambiguity, and scoring.

Two readings of "the answer at position ``i``" (theory.md section 1.1):

- **the task's answer** (:func:`expected_answers`): at each query position, the value paired with the queried key in
  the key-value block; nothing (``-100``) elsewhere. This is what labels encode and what models are scored on;
- **raw recall** (:func:`raw_recall_targets`): at every position, the token that followed the previous occurrence of
  the current token, or ``-1`` if it has none. It is the definition the mixers' constructions implement.

They agree at every query position unless a filler token equals the queried key somewhere before the query
(:func:`ambiguous_queries`); ``clean`` filler rules that out, ``random`` filler (zoology's ``random_non_queries``)
does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mqarkit.checks import check_int, check_rows_in_int64
from mqarkit.memory import check_memory
from mqarkit.task import IGNORE_INDEX, MQARBatch

NO_PREVIOUS = -1


def _lookup_rows(table: np.ndarray, queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``b``, the column of ``queries[b, t]`` in ``table[b]`` (whose entries are distinct, in ``[0, width)``).

    table: (n, m) int64; queries: (n, k) int64 in ``[0, width)``. Returns ``(column, found)``, both (n, k); ``column``
    is meaningless where ``found`` is False. One ``searchsorted`` over all rows, each row shifted by ``b * width``.
    """
    n, m = table.shape
    check_rows_in_int64(n, width, what="batch")
    order = np.argsort(table, axis=1)  # (n, m)
    shift = (np.arange(n, dtype=np.int64) * width)[:, None]
    flat = (np.take_along_axis(table, order, axis=1) + shift).ravel()  # globally sorted
    loc = np.searchsorted(flat, (queries + shift).ravel()).reshape(queries.shape)  # (n, k)
    local = np.clip(loc - (np.arange(n, dtype=np.int64) * m)[:, None], 0, m - 1)  # rank inside the row
    column = np.take_along_axis(order, local, axis=1)
    found = np.take_along_axis(table, column, axis=1) == queries
    return column, found


def _check_batch(batch: object, name: str = "batch") -> MQARBatch:
    if not isinstance(batch, MQARBatch):
        raise TypeError(f"{name}: must be an MQARBatch (mqarkit.task.generate), got {type(batch).__name__}")
    return batch


def expected_answers(batch: MQARBatch) -> np.ndarray:
    """The task's answers: (n, N) int64, ``-100`` except at query positions, where it is the paired value.

    Read from the tokens, not from ``batch.labels``: the token at ``query_positions[b, t]`` is looked up among the keys
    of the last key-value block (the tokens at ``key_positions``), and the answer is the token right after that key.
    Raises ``ValueError`` if a query token is not a key of its block (a malformed batch).
    """
    x = _check_batch(batch).inputs
    block_keys = np.take_along_axis(x, batch.key_positions, axis=1)  # (n, D)
    block_values = np.take_along_axis(x, batch.key_positions + 1, axis=1)  # (n, D)
    query_tokens = np.take_along_axis(x, batch.query_positions, axis=1)  # (n, D)
    column, found = _lookup_rows(block_keys, query_tokens, batch.spec.vocab_size)
    if not found.all():
        b, t = np.argwhere(~found)[0]
        raise ValueError(
            f"batch: the query at position {batch.query_positions[b, t]} of example {b} (token {query_tokens[b, t]}) "
            "is not a key of the key-value block"
        )
    out = np.full(x.shape, IGNORE_INDEX, dtype=np.int64)
    np.put_along_axis(out, batch.query_positions, np.take_along_axis(block_values, column, axis=1), axis=1)
    return out


def raw_recall_targets(inputs: np.ndarray, *, max_chunk_bytes: int = 1 << 26) -> np.ndarray:
    """Brute-force raw recall (n, N): ``x[b, j+1]`` for the largest ``j < i`` with ``x[b, j] == x[b, i]``, or -1.

    inputs: (n, N) integer tokens. The literal definition, by an ``O(N^2)`` comparison table per example, processed
    in chunks of examples so that the table stays under ``max_chunk_bytes``. Meant as a specification to test
    against, not a fast path.
    """
    x = np.asarray(inputs)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"inputs: must be a 2-d integer array (n, N), got {x.dtype}{x.shape}")
    max_chunk_bytes = check_int("max_chunk_bytes", max_chunk_bytes, 1)
    n, N = x.shape
    check_memory(8 * n * N + N * N, parameter=f"inputs.shape={x.shape}", what="the int64 targets and the (N, N) mask")
    out = np.full((n, N), NO_PREVIOUS, dtype=np.int64)
    earlier = np.tril(np.ones((N, N), dtype=bool), k=-1)  # earlier[i, j] = j < i
    chunk = max(1, max_chunk_bytes // max(1, N * N))
    for start in range(0, n, chunk):
        xc = x[start : start + chunk].astype(np.int64)  # (m, N)
        same = (xc[:, :, None] == xc[:, None, :]) & earlier  # (m, N, N): [b, i, j] = x_j == x_i and j < i
        has = same.any(axis=2)  # (m, N)
        last = N - 1 - np.argmax(same[:, :, ::-1], axis=2)  # (m, N) largest such j (garbage where not has)
        follow = np.take_along_axis(xc, np.minimum(last + 1, N - 1), axis=1)
        out[start : start + chunk] = np.where(has, follow, NO_PREVIOUS)
    return out


def filler_mask(batch: MQARBatch) -> np.ndarray:
    """(n, N) bool: True at filler positions (the query region minus the query positions)."""
    _check_batch(batch)
    mask = np.zeros(batch.inputs.shape, dtype=bool)
    mask[:, batch.spec.context_len :] = True
    np.put_along_axis(mask, batch.query_positions, False, axis=1)
    return mask


def ambiguous_queries(batch: MQARBatch) -> np.ndarray:
    """(n, N) bool: True at a query position whose key also occurs as a filler token *before* the query.

    There the raw-recall reading (the token after the *previous* occurrence) differs from the task's answer in
    general. Vectorised: every filler token is looked up among its example's keys (:func:`_lookup_rows`), and a hit
    at position ``i`` marks the query of that key if ``i`` precedes it.
    """
    n, N = _check_batch(batch).inputs.shape
    filler = filler_mask(batch)
    tokens = np.where(filler, batch.inputs, 0)  # token 0 is never a key (keys are >= 1)
    column, found = _lookup_rows(batch.keys, tokens, batch.spec.vocab_size)  # (n, N) each
    query_of_key = np.take_along_axis(batch.query_positions, np.where(found, column, 0), axis=1)  # (n, N)
    before = found & (np.arange(N)[None, :] < query_of_key)
    out = np.zeros((n, N), dtype=bool)
    b, i = np.nonzero(before)
    out[b, query_of_key[b, i]] = True
    return out


@dataclass(frozen=True, eq=False)
class Score:
    """Accuracy at query positions.

    accuracy:    correct / scored over all queries (float in [0, 1]).
    num_correct, num_queries: the counts behind it.
    per_example: (n_total,) float64 accuracy of each example (examples of several batches concatenated in order).
    per_slice:   ``{(seq_len, num_kv_pairs): accuracy}``, one entry per distinct (N, D) among the scored batches.
    """

    accuracy: float
    num_correct: int
    num_queries: int
    per_example: np.ndarray
    per_slice: dict[tuple[int, int], float]


def _check_predictions(predictions: object, batch: MQARBatch, name: str) -> np.ndarray:
    if hasattr(predictions, "detach"):  # a torch tensor, without importing torch
        predictions = predictions.detach().cpu().numpy()  # type: ignore[attr-defined]
    pred = np.asarray(predictions)
    if not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"{name}: must hold integer token ids (argmax of the logits), got dtype {pred.dtype}")
    if pred.shape != batch.inputs.shape:
        raise ValueError(f"{name}: must have the shape of the batch's inputs {batch.inputs.shape}, got {pred.shape}")
    return pred


def _correct(predictions: np.ndarray, batch: MQARBatch) -> np.ndarray:
    """(n, D) bool: whether the prediction at each query position equals the expected answer."""
    expected = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)
    return np.take_along_axis(predictions, batch.query_positions, axis=1) == expected


def score_many(predictions: Sequence[object], batches: Sequence[MQARBatch]) -> Score:
    """Score several batches (possibly of different specs) together; ``predictions[k]`` is (n_k, N_k) int."""
    for name, value in (("predictions", predictions), ("batches", batches)):
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise TypeError(f"{name}: must be a list with one entry per batch, got {type(value).__name__}")
    if len(predictions) != len(batches):
        raise ValueError(f"predictions: got {len(predictions)} arrays for {len(batches)} batches; need one per batch")
    if not batches:
        raise ValueError("batches: needs at least one batch")
    per_example: list[np.ndarray] = []
    slices: dict[tuple[int, int], list[int]] = {}
    for k, (pred, batch) in enumerate(zip(predictions, batches)):
        if not isinstance(batch, MQARBatch):
            raise TypeError(f"batches[{k}]: must be an MQARBatch, got {type(batch).__name__}")
        correct = _correct(_check_predictions(pred, batch, f"predictions[{k}]"), batch)  # (n, D)
        per_example.append(correct.mean(axis=1))
        tally = slices.setdefault((batch.spec.seq_len, batch.spec.num_kv_pairs), [0, 0])
        tally[0] += int(correct.sum())
        tally[1] += correct.size
    num_correct = sum(c for c, _ in slices.values())
    num_queries = sum(t for _, t in slices.values())
    return Score(
        accuracy=num_correct / num_queries,
        num_correct=num_correct,
        num_queries=num_queries,
        per_example=np.concatenate(per_example),
        per_slice={key: c / t for key, (c, t) in slices.items()},
    )


def score(predictions: object, batch: MQARBatch) -> Score:
    """Score one batch: ``predictions`` (n, N) int, the predicted next token at every position (only queries count)."""
    _check_batch(batch)
    return score_many([predictions], [batch])
