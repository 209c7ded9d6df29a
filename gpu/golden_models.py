"""Golden whole models: the reference ``LanguageModel``'s parameters, an input batch and its logits (float64).

``../shared/golden/README.md`` ("Whole models"; a copy ships as ``mqarkit/golden``) describes the files
``lm_*.npz`` and ``models_index.json``;
:func:`load_golden_model` builds our :class:`~mqarkit.gpu.reference_model.ReferenceLanguageModel` from the stored
``ModelConfig`` and loads the stored ``state_dict`` under its exact keys (``strict=True``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mqarkit.gpu.golden import default_golden_dir
from mqarkit.gpu.reference_model import ReferenceLanguageModel, load_reference_model

INDEX = "models_index.json"


def golden_model_entries(golden_dir: Path | None = None) -> dict[str, dict]:
    """The entries of ``models_index.json`` by file stem (``lm_attention_hybrid``, ...)."""
    path = (golden_dir or default_golden_dir()) / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"golden index {path} not found (golden_dir={golden_dir}; see mqarkit.golden_data)")
    return {Path(m["file"]).stem: m for m in json.loads(path.read_text())["models"]}


def load_golden_model(
    name: str, golden_dir: Path | None = None
) -> tuple[ReferenceLanguageModel, torch.Tensor, torch.Tensor, dict]:
    """(our model holding the golden parameters, ``inputs (B, N)`` int64, ``logits (B, N, c)`` float64, index entry)."""
    entries = golden_model_entries(golden_dir)
    if name not in entries:
        raise ValueError(f"name={name!r}: unknown golden model; known: {sorted(entries)}")
    entry = entries[name]
    with np.load((golden_dir or default_golden_dir()) / entry["file"]) as data:
        arrays = {key: data[key] for key in data.files}
    state = {k.removeprefix("param:"): torch.from_numpy(v) for k, v in arrays.items() if k.startswith("param:")}
    model = load_reference_model(entry["config"], state)
    return model, torch.from_numpy(arrays["inputs"]), torch.from_numpy(arrays["logits"]), entry
