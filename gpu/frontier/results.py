"""Records as a table, for notebooks: :func:`load_results` gives a pandas ``DataFrame``, one row per run and test slice.

``pandas`` is an optional extra (``pip install "mqarkit[pandas]"``); nothing else in the harness needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mqarkit.gpu.frontier.records import RECORD_STATUSES, read_records

if TYPE_CHECKING:
    import pandas as pd

RUN_COLUMNS = (
    "run_id",
    "sweep",
    "status",
    "diverged_at_epoch",
    "last_finite_loss",
    "family",
    "lr",
    "seed",
    "data_seed",
    "epochs_max",
    "epochs_trained",
    "state_numbers",
    "state_bytes",
    "state_measured",
    "state_source",
    "overall_accuracy",
    "device",
    "resumed_from_epoch",
)
MODEL_COLUMNS = ("mixer", "d_model", "vocab_size", "max_len", "conv_kernel", "tie_head")


def result_rows(records: Iterable[dict]) -> list[dict]:
    """One dict per run and test slice: the run's fields (:data:`RUN_COLUMNS`), its model's (the knobs flattened in,
    ``mixer_kwargs`` kept as a dict), the slice's ``seq_len``, ``num_kv_pairs``, ``num_examples``, ``accuracy``, and
    the run's ``slice_mean_accuracy`` (the mean over its slices, the frontier's y-axis)."""
    rows = []
    for rec in records:
        model = dict(rec["model"])
        slices = rec["accuracy"]
        mean = sum(s["accuracy"] for s in slices) / len(slices) if slices else float("nan")
        base = {k: rec.get(k) for k in RUN_COLUMNS} | {k: model.pop(k, None) for k in MODEL_COLUMNS}
        base |= {k: v for k, v in model.items() if k != "family"} | {"slice_mean_accuracy": mean}
        for s in slices:
            rows.append(base | {k: s[k] for k in ("seq_len", "num_kv_pairs", "num_examples", "accuracy")})
    return rows


def load_results(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """The runs of one or more JSONL results files (finished and diverged: the ``status`` column says which), one row
    per run and test slice (see :func:`result_rows`)."""
    try:
        import pandas as pd
    except ImportError as exc:  # an optional extra, not part of this repository
        raise ImportError('load_results needs pandas: pip install "mqarkit[pandas]"') from exc
    files = [paths] if isinstance(paths, str | Path) else list(paths)
    return pd.DataFrame(result_rows(r for p in files for r in read_records(p, statuses=RECORD_STATUSES)))
