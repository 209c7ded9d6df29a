from __future__ import annotations

import numpy as np
import pytest

from mqarkit.tolerances import (
    assert_as_accurate_as_reference,
    assert_close,
    relative_rms_error,
    scaled_error,
    tolerance_for,
)


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


def test_scaled_error_is_relative_to_the_largest_expected_entry() -> None:
    assert scaled_error(np.array([2.0, 0.5]), np.array([2.0, 0.0])) == 0.25


def test_relative_rms_error_is_the_error_of_the_array_as_a_whole() -> None:
    assert relative_rms_error(np.array([3.0, 4.0]) * 1.5, np.array([3.0, 4.0])) == 0.5


def test_low_precision_rule() -> None:
    """Within the bf16 row of the float32 reference: passes. Outside it: passes only if no more than twice as far
    from float32 as the naive reference in the same precision, in the largest entry and as a whole."""
    expected = np.linspace(-1.0, 1.0, 101)
    assert_as_accurate_as_reference(expected + 0.005, expected, expected, dtype="bfloat16")
    rounding = 0.05 * np.cos(np.arange(101))  # what the low precision does to the naive form
    assert_as_accurate_as_reference(
        expected + 0.05 * np.sin(np.arange(101)), expected, expected + rounding, dtype="bfloat16"
    )
    with pytest.raises(AssertionError, match="scaled_error"):  # a wrong fast path, the reference as accurate as ever
        assert_as_accurate_as_reference(expected + 0.2, expected, expected + rounding, dtype="bfloat16")
    wrong_everywhere_a_little = expected + 0.09 * np.sign(np.cos(np.arange(101)))
    with pytest.raises(AssertionError, match="relative_rms_error"):  # no worse at worst, far worse as a whole
        assert_as_accurate_as_reference(wrong_everywhere_a_little, expected, expected + rounding, dtype="bfloat16")


def test_low_precision_rule_refuses_non_finite_values() -> None:
    """A NaN is never "no further than twice the reference": it fails before any comparison of errors."""
    expected = np.linspace(-1.0, 1.0, 11)
    broken = expected.copy()
    broken[3] = np.nan
    with pytest.raises(AssertionError, match="non-finite values at"):
        assert_as_accurate_as_reference(broken, expected, expected + 0.5, dtype="bfloat16")
    with pytest.raises(AssertionError, match=r"\(the reference in the same precision\): non-finite"):
        assert_as_accurate_as_reference(expected, expected, broken, dtype="bfloat16")
