"""zoology_mqar reproduces the reference: exactly on the golden files, and against an independent transcription.

The transcription below re-derives the reference's draws from the legacy ``RandomState`` bit stream itself, not
through ``RandomState.choice``: legacy ``choice(pool, D, replace=False)`` without ``p`` is the first ``D`` entries of
``permutation(len(pool))``, and with ``p`` it repeatedly draws ``random_sample`` uniforms, inverts the cdf of the
weights not yet drawn, and keeps the first occurrence of each new index. A loop over examples, literal and slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mqarkit.golden_data import zoology_golden_dir
from mqarkit.oracle import ambiguous_queries, expected_answers
from mqarkit.zoology import zoology_mqar, zoology_mqar_batch

GOLDEN = zoology_golden_dir()  # shipped with the package: always there (a missing folder raises here)


def _legacy_weighted_distinct(rs: np.random.RandomState, p: np.ndarray, size: int) -> np.ndarray:
    found: list[int] = []
    p = p.copy()
    while len(found) < size:
        u = rs.random_sample(size - len(found))
        p[found] = 0.0
        cdf = np.cumsum(p)
        cdf /= cdf[-1]
        for index in np.searchsorted(cdf, u, side="right"):  # keep the first occurrence of each, in draw order
            if int(index) not in found:
                found.append(int(index))
    return np.array(found)


def transcribed_reference(vocab_size: int, num_examples: int, input_seq_len: int, seed: int, num_kv_pairs: int,
                          power_a: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The reference (random_non_queries=False) as a loop over examples, from the legacy bit stream."""
    rs = np.random.RandomState(seed)
    half, D, N = vocab_size // 2, num_kv_pairs, input_seq_len
    keys = [1 + rs.permutation(half - 1)[:D] for _ in range(num_examples)]
    values = [half + rs.permutation(vocab_size - half)[:D] for _ in range(num_examples)]
    space = (N - 2 * D) // 2
    p = power_a * np.arange(1, space + 1) ** (power_a - 1)
    p = p / p.sum()
    gaps = [_legacy_weighted_distinct(rs, p, D) for _ in range(num_examples)]
    inputs = np.zeros((num_examples, N), dtype=np.int64)
    labels = np.full((num_examples, N), -100, dtype=np.int64)
    for b in range(num_examples):
        for j in range(D):
            inputs[b, 2 * j], inputs[b, 2 * j + 1] = keys[b][j], values[b][j]
            inputs[b, 2 * D + 2 * gaps[b][j]] = keys[b][j]
            labels[b, 2 * D + 2 * gaps[b][j]] = values[b][j]
    return inputs, labels


def _golden_cases() -> list[dict]:
    index = GOLDEN / "mqar_index.json"
    return [{**entry["defaults"], **entry["kwargs"], "file": entry["file"]} for entry in json.loads(index.read_text())]


def test_golden_index_lists_cases() -> None:
    assert len(_golden_cases()) >= 6


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda c: c["file"])
def test_golden_reproduced(case: dict) -> None:
    kwargs = {k: v for k, v in case.items() if k not in ("file", "num_passes")}
    assert case["num_passes"] == 1
    golden = np.load(GOLDEN / case["file"])
    batch = zoology_mqar_batch(**kwargs)
    assert np.array_equal(batch.labels, golden["labels"])
    if kwargs["random_non_queries"]:
        # fillers come from torch's unseeded global RNG in the reference: compare every other position
        filler = np.ones(batch.inputs.shape, dtype=bool)
        filler[:, : 2 * kwargs["num_kv_pairs"]] = False
        np.put_along_axis(filler, batch.query_positions, False, axis=1)
        assert np.array_equal(batch.inputs[~filler], golden["inputs"][~filler])
    else:
        assert np.array_equal(batch.inputs, golden["inputs"])
    inputs, labels = zoology_mqar(**kwargs)
    assert np.array_equal(inputs, batch.inputs) and np.array_equal(labels, batch.labels)


@pytest.mark.parametrize("case", [c for c in _golden_cases() if not c["random_non_queries"]], ids=lambda c: c["file"])
def test_transcription_matches_golden(case: dict) -> None:
    # validates the test oracle itself on the reference's real output
    golden = np.load(GOLDEN / case["file"])
    args = [case[k] for k in ("vocab_size", "num_examples", "input_seq_len", "seed", "num_kv_pairs", "power_a")]
    inputs, labels = transcribed_reference(*args)
    assert np.array_equal(inputs, golden["inputs"]) and np.array_equal(labels, golden["labels"])


@pytest.mark.parametrize(
    ("vocab_size", "num_examples", "input_seq_len", "seed", "num_kv_pairs", "power_a"),
    [
        (8192, 5, 64, 11, 4, 0.01),
        (129, 7, 128, 2024, 32, 0.01),  # odd vocabulary, D = N/4 (every slot used)
        (301, 3, 300, 5, 20, 1.0),
        (17, 9, 16, 0, 1, 0.3),
        (1000, 2, 512, 99, 100, 2.0),
    ],
)
def test_matches_transcribed_reference(vocab_size, num_examples, input_seq_len, seed, num_kv_pairs, power_a) -> None:
    expected_inputs, expected_labels = transcribed_reference(
        vocab_size, num_examples, input_seq_len, seed, num_kv_pairs, power_a
    )
    kwargs = dict(vocab_size=vocab_size, num_examples=num_examples, input_seq_len=input_seq_len, seed=seed,
                  num_kv_pairs=num_kv_pairs, power_a=power_a)  # fmt: skip
    inputs, labels = zoology_mqar(**kwargs, random_non_queries=False)
    assert np.array_equal(inputs, expected_inputs) and np.array_equal(labels, expected_labels)
    noisy, noisy_labels = zoology_mqar(**kwargs, random_non_queries=True)
    assert np.array_equal(noisy_labels, expected_labels)
    kept = expected_inputs != 0
    assert np.array_equal(noisy[kept], expected_inputs[kept])
    assert ((noisy >= 0) & (noisy < vocab_size)).all()


def test_random_fillers_reproduce_the_reported_collision_rate() -> None:
    # theory.md: about 0.55 spurious key copies per example at (256, 64), about half before the query.
    batch = zoology_mqar_batch(vocab_size=8192, num_examples=1500, input_seq_len=256, seed=1, num_kv_pairs=64)
    ambiguous_per_example = ambiguous_queries(batch).sum() / batch.num_examples
    assert 0.2 < ambiguous_per_example < 0.35
    assert np.array_equal(expected_answers(batch), batch.labels)


def test_does_not_touch_the_global_rng() -> None:
    # inspects (never seeds) the global legacy state: the reference would have re-seeded it
    before = np.random.get_state()  # noqa: NPY002
    zoology_mqar(vocab_size=64, num_examples=3, input_seq_len=32, seed=5, num_kv_pairs=4)
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(after[1], before[1]) and after[2] == before[2]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"vocab_size": 32}, "vocab_size"),
        ({"input_seq_len": 33, "vocab_size": 64}, "seq_len"),
        ({"num_kv_pairs": 9}, "num_kv_pairs"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"num_examples": 0}, "num_examples"),
    ],
)
def test_rejects_what_the_reference_asserts(overrides: dict, field: str) -> None:
    kwargs = {"vocab_size": 64, "num_examples": 2, "input_seq_len": 32, "seed": 0, "num_kv_pairs": 4, **overrides}
    with pytest.raises(ValueError, match=field):
        zoology_mqar(**kwargs)
