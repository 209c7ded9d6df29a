"""Exact comparisons of construction weights (shared by the tests of this folder)."""

from __future__ import annotations

import numpy as np


def assert_same(a: np.ndarray | None, b: np.ndarray | None, what: str) -> None:
    """``a`` and ``b`` are both ``None``, or equal in shape and in every entry (exact ``==``)."""
    if a is None or b is None:
        assert a is None and b is None, f"{what}: one is None"
        return
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    assert np.array_equal(a, b), f"{what}: {int((a != b).sum())} entries differ"
