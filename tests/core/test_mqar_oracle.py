"""The oracle: expected answers vs labels, brute-force raw recall, ambiguity, scoring."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given

from mqarkit.oracle import (
    NO_PREVIOUS,
    ambiguous_queries,
    expected_answers,
    filler_mask,
    raw_recall_targets,
    score,
    score_many,
)
from mqarkit.strategies import Instance, instances
from mqarkit.task import IGNORE_INDEX, MQARSpec, generate


def raw_recall_by_scan(inputs: np.ndarray) -> np.ndarray:
    """A second, independent reading of raw recall: one left-to-right scan keeping the last position of each token."""
    out = np.full(inputs.shape, NO_PREVIOUS, dtype=np.int64)
    for b, row in enumerate(inputs.tolist()):
        last: dict[int, int] = {}
        for i, token in enumerate(row):
            if token in last:
                out[b, i] = row[last[token] + 1]
            last[token] = i
    return out


def ambiguity_by_scan(inst: Instance) -> np.ndarray:
    batch = inst.batch
    out = np.zeros(batch.inputs.shape, dtype=bool)
    fill = filler_mask(batch)
    for b in range(batch.num_examples):
        for key, q in zip(batch.keys[b].tolist(), batch.query_positions[b].tolist()):
            out[b, q] = any(fill[b, i] and batch.inputs[b, i] == key for i in range(q))
    return out


@given(instances(max_seq_len=48, max_num_passes=3))
def test_expected_answers_equal_labels(inst: Instance) -> None:
    assert np.array_equal(expected_answers(inst.batch), inst.batch.labels)


@given(instances(max_seq_len=48, max_num_passes=3))
def test_raw_recall_matches_an_independent_scan(inst: Instance) -> None:
    got = raw_recall_targets(inst.batch.inputs, max_chunk_bytes=1)  # one example per chunk
    assert np.array_equal(got, raw_recall_by_scan(inst.batch.inputs))
    assert np.array_equal(raw_recall_targets(inst.batch.inputs), got)


@given(instances(max_seq_len=48, max_num_passes=3, fillers=("clean", "zero")))
def test_clean_and_zero_instances_are_unambiguous_and_agree_with_raw_recall(inst: Instance) -> None:
    batch = inst.batch
    assert not ambiguous_queries(batch).any()
    raw = raw_recall_targets(batch.inputs)
    q = batch.query_positions
    assert np.array_equal(np.take_along_axis(raw, q, axis=1), batch.values)


@given(instances(max_seq_len=48, max_num_passes=2, fillers=("random",), max_extra_vocab=4, max_num_examples=6))
def test_ambiguity_is_exactly_an_earlier_filler_copy_of_the_key(inst: Instance) -> None:
    batch = inst.batch
    ambiguous = ambiguous_queries(batch)
    assert np.array_equal(ambiguous, ambiguity_by_scan(inst))
    # away from ambiguous queries, raw recall reads the task's answer
    raw, labels = raw_recall_targets(batch.inputs), batch.labels
    clear = (labels != IGNORE_INDEX) & ~ambiguous
    assert np.array_equal(raw[clear], labels[clear])


def test_random_filler_produces_ambiguity_where_clean_does_not() -> None:
    # small vocabulary: random fillers hit keys often; clean fillers never do (same spec otherwise)
    random_spec = MQARSpec(vocab_size=65, seq_len=64, num_kv_pairs=8, filler="random")
    batch = generate(random_spec, 200, np.random.default_rng(4))
    assert ambiguous_queries(batch).sum() > 50
    clean = generate(dataclasses.replace(random_spec, filler="clean"), 200, np.random.default_rng(4))
    assert ambiguous_queries(clean).sum() == 0


def test_expected_answers_rejects_a_malformed_batch() -> None:
    batch = generate(MQARSpec(vocab_size=64, seq_len=32, num_kv_pairs=4), 3, np.random.default_rng(0))
    inputs = batch.inputs.copy()
    inputs[1, batch.query_positions[1, 2]] = 0  # the query token is no longer a key
    with pytest.raises(ValueError, match="batch: the query at position"):
        expected_answers(dataclasses.replace(batch, inputs=inputs))


def test_raw_recall_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="inputs"):
        raw_recall_targets(np.zeros((2, 3), dtype=np.float64))
    with pytest.raises(ValueError, match="inputs"):
        raw_recall_targets(np.zeros(4, dtype=np.int64))


def test_score_counts_exactly() -> None:
    spec = MQARSpec(vocab_size=100, seq_len=40, num_kv_pairs=5, filler="clean")
    batch = generate(spec, 8, np.random.default_rng(1))
    perfect = score(batch.labels, batch)
    assert (perfect.num_correct, perfect.num_queries, perfect.accuracy) == (40, 40, 1.0)
    assert np.array_equal(perfect.per_example, np.ones(8))
    wrong = batch.labels.copy()
    q = batch.query_positions
    wrong[0, q[0, 0]] += 1  # one wrong answer in example 0
    wrong[3, q[3, :2]] = 0  # two in example 3
    wrong[5, 0] = 7  # a non-query position: not scored
    s = score(wrong, batch)
    assert (s.num_correct, s.num_queries) == (37, 40) and s.accuracy == 37 / 40
    assert s.per_example.tolist() == [4 / 5, 1, 1, 3 / 5, 1, 1, 1, 1]
    assert s.per_slice == {(40, 5): 37 / 40}


def test_score_many_groups_slices() -> None:
    rng = np.random.default_rng(2)
    a = generate(MQARSpec(vocab_size=100, seq_len=40, num_kv_pairs=5), 4, rng)
    b = generate(MQARSpec(vocab_size=100, seq_len=64, num_kv_pairs=8), 2, rng)
    c = generate(MQARSpec(vocab_size=200, seq_len=40, num_kv_pairs=5, filler="random"), 2, rng)
    zeros_b = np.zeros_like(b.labels)
    s = score_many([a.labels, zeros_b, c.labels], [a, b, c])
    assert (s.num_correct, s.num_queries) == (30 + 0, 20 + 16 + 10)
    assert s.per_slice == {(40, 5): 1.0, (64, 8): 0.0}
    assert s.per_example.shape == (8,)
    assert s.per_example.tolist() == [1.0] * 4 + [0.0] * 2 + [1.0] * 2


def test_score_validates_predictions() -> None:
    batch = generate(MQARSpec(vocab_size=64, seq_len=32, num_kv_pairs=4), 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="predictions\\[0\\]: must hold integer"):
        score(batch.labels.astype(np.float32), batch)
    with pytest.raises(ValueError, match="predictions\\[0\\]: must have the shape"):
        score(batch.labels[:, :-1], batch)
    with pytest.raises(ValueError, match="predictions: got 1 arrays for 2 batches"):
        score_many([batch.labels], [batch, batch])
    with pytest.raises(ValueError, match="batches"):
        score_many([], [])
    with pytest.raises(TypeError, match="batches\\[0\\]"):
        score_many([batch.labels], [batch.inputs])  # type: ignore[list-item]


def test_batch_rejects_wrong_shapes() -> None:
    batch = generate(MQARSpec(vocab_size=64, seq_len=32, num_kv_pairs=4), 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="labels: must be an int64 array of shape \\(2, 32\\)"):
        dataclasses.replace(batch, labels=batch.labels[:, :5])
    with pytest.raises(ValueError, match="keys"):
        dataclasses.replace(batch, keys=batch.keys.astype(np.int32))
