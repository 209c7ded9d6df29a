from __future__ import annotations

import numpy as np
import pytest

from mqarkit.tolerances import assert_close, tolerance_for


def test_close_values_pass_and_far_values_fail() -> None:
    x = np.linspace(-3, 3, 11)
    assert_close(x + 1e-14, x)
    with pytest.raises(AssertionError, match="worst index"):
        assert_close(x + 1e-6, x)


def test_shape_mismatch_fails() -> None:
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(3), np.zeros((3, 1)))


def test_tolerance_is_keyed_by_dtype() -> None:
    assert tolerance_for("float32").rtol > tolerance_for("float64").rtol
    assert tolerance_for(np.dtype("float64")) == tolerance_for("float64")
    with pytest.raises(ValueError, match="dtype="):
        tolerance_for("int8")
