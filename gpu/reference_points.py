"""Exported reference checkpoints as points of the state-size-vs-recall plane ([B] Fig. 2's configuration).

:func:`measure_exports` exports each checkpoint once for the longest test slice (``N = 1024``), loads it into our
reference-layout model on ``device`` in ``dtype``, and measures the accuracy on unambiguous queries of every test
slice of [B] Fig. 2 on the reference generator's data (its default random filler, and zero filler), and the state
at ``N = 1024``: numbers measured from the recurrent modes (:func:`~mqarkit.gpu.reference_model.
measured_state_numbers`), bytes at float32 (4 per number, the frontier plot's precision), and the reference's own
``state_size`` for comparison. :func:`load_points` reads the committed results file
(``docs/results/reference_exports.json``) back as plot points.

Checkpoints: the attention hybrid (``d_model = 64``), the sliding-window hybrid at every window of [B] Fig. 2
(``d_model = 128``; the reference's ``block_size`` ``b`` in 8 .. 1024 admits ``b + 1`` keys: our ``window = b + 1``)
and the Based hybrid (``d_model = 64``, ``feature_dim = 16``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mqarkit.gpu.reference_eval import evaluate_reference
from mqarkit.gpu.reference_export import export_reference
from mqarkit.gpu.reference_model import (
    load_reference_model,
    measured_state_numbers,
    state_size_reported,
)

VOCAB_SIZE = 8192
# [B] Fig. 2's test slices (N, D) (theory.md §6; the frontier preset holds the same list for training)
FIG2_TEST_SLICES = ((64, 4), (64, 8), (64, 16), (128, 32), (256, 64), (512, 128), (1024, 256))
SLIDING_BLOCK_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)  # [B] Fig. 2's sliding windows (reference block_size)
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "reference_exports.json"


def checkpoints() -> list[dict]:
    """The checkpoints of the module docstring: ``{"name", "construction", "kwargs"}``."""
    out = [{"name": "attention (d=64)", "construction": "attention_signcode", "kwargs": {"d_model": 64}}]
    for b in SLIDING_BLOCK_SIZES:
        out.append(
            {
                "name": f"sliding window b={b} (d=128)",
                "construction": "sliding_window",
                "kwargs": {"d_model": 128, "window": b + 1},
            }
        )
    out.append({"name": "based (d=64, d'=16)", "construction": "based_taylor", "kwargs": {"d_model": 64}})
    return out


def measure_exports(
    *,
    device: torch.device,
    dtype: torch.dtype,
    num_examples: int,
    seed: int = 0,
    names: list[str] | None = None,
    slices: tuple[tuple[int, int], ...] = FIG2_TEST_SLICES,
) -> list[dict]:
    """One record per checkpoint (module docstring); ``names`` restricts to those checkpoint names."""
    seq_len = max(n for n, _ in slices)
    records = []
    for spec in checkpoints():
        if names is not None and spec["name"] not in names:
            continue
        exported = export_reference(
            spec["construction"], vocab_size=VOCAB_SIZE, seq_len=seq_len, num_kv_pairs=1, **spec["kwargs"]
        )
        model = load_reference_model(exported.config, exported.state)
        numbers = measured_state_numbers(model, seq_len)
        model = model.to(device=device, dtype=dtype)
        per_slice = []
        for n, d in slices:
            for random_filler in (True, False):
                score = evaluate_reference(
                    model,
                    vocab_size=VOCAB_SIZE,
                    seq_len=n,
                    num_kv_pairs=d,
                    num_examples=num_examples,
                    seed=seed,
                    random_non_queries=random_filler,
                    window=exported.info.get("window"),
                )
                per_slice.append(score.as_dict())
        random = [s for s in per_slice if s["random_non_queries"]]
        records.append(
            {
                "name": spec["name"],
                "construction": spec["construction"],
                "mixer": exported.config["sequence_mixer"]["kwargs"]["configs"][1]["name"],
                "d_model": exported.config["d_model"],
                "seq_len": seq_len,
                "knobs": {k: v for k, v in exported.info.items() if k not in ("layers", "construction")},
                "state_numbers": numbers,
                "state_bytes": 4 * numbers,
                "state_bytes_reported_by_reference": state_size_reported(model, seq_len),
                "accuracy": sum(s["accuracy_unambiguous"] for s in random) / len(random),
                "accuracy_by_slice": per_slice,
                "dtype": str(dtype).removeprefix("torch."),
                "device": str(device),
            }
        )
    return records


def load_points(path: Path | None = None) -> list[dict]:
    """Plot points from the results file: ``[{"name", "family", "state_bytes", "accuracy", "source"}]``.

    ``state_bytes``: measured state at ``N = 1024``, float32; ``accuracy``: mean over [B] Fig. 2's test slices of the
    accuracy on unambiguous queries (reference generator, its default random filler); ``family``: the construction
    (``attention_signcode``, ``sliding_window``, ``based_taylor``)."""
    data = json.loads((path or RESULTS).read_text())
    return [
        {
            "name": r["name"],
            "family": r["construction"],
            "state_bytes": r["state_bytes"],
            "accuracy": r["accuracy"],
            "source": f"exported checkpoint ({r['dtype']}, {r['device']})",
        }
        for r in data["checkpoints"]
    ]


def slice_cells(record: dict) -> tuple[list[str], int]:
    """A checkpoint's accuracy on unambiguous queries per [B] Fig. 2 test slice, as table cells ``"random / zero"``
    (the two fillers), and its number of queries where correct != in the window (U8's recall set), summed."""
    cells, mismatches = [], 0
    for n, d in FIG2_TEST_SLICES:
        pair = [s for s in record["accuracy_by_slice"] if (s["seq_len"], s["num_kv_pairs"]) == (n, d)]
        rnd = next(s for s in pair if s["random_non_queries"])
        zero = next(s for s in pair if not s["random_non_queries"])
        cells.append(f"{rnd['accuracy_unambiguous']:.4f} / {zero['accuracy_unambiguous']:.4f}")
        mismatches += sum(s.get("num_recall_set_mismatches") or 0 for s in pair)
    return cells, mismatches
