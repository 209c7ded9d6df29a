"""The point-level comparisons behind U5 (H3 as BaseConv) and U7 (linear attention as BaseConv), moved out of the
construction modules into proofs_checks: they pass on the real stacks and catch broken ones."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mqarkit.constructions import baseconv_linear_attention as la
from mqarkit.constructions import h3_gated
from mqarkit.constructions.baseconv_linear_attention import LinearAttentionParams, linear_attention_as_baseconv
from mqarkit.polynomials import BaseConv, Layer, Model
from mqarkit.proofs_checks.h3_simulation import h3_simulation_mismatch
from mqarkit.proofs_checks.u7_linear_attention import SimulationPoint, simulation_mismatch, symbolic_mismatch

MAPS = [("identity", "full"), ("taylor", "full"), ("taylor", "compressed")]


@pytest.mark.symbolic
@pytest.mark.parametrize("feature_map, layout", MAPS)
def test_symbolic_polynomial_identity(feature_map: str, layout: str) -> None:
    assert symbolic_mismatch(SimulationPoint(3, 2, 2, 1, feature_map, layout)) is None
    assert symbolic_mismatch(SimulationPoint(2, 1, 1, 2, feature_map, layout)) is None


@pytest.mark.parametrize("feature_map, layout", MAPS)
def test_check_point_passes(feature_map: str, layout: str) -> None:
    assert simulation_mismatch(SimulationPoint(4, 2, 2, 3, feature_map, layout, exact=True)) is None
    assert simulation_mismatch(SimulationPoint(17, 3, 3, 2, feature_map, layout)) is None


# --------------------------------------------------------------------------------------------------------------------
# broken stacks are caught


def _replace_layer(model: Model, index: int, **changes: np.ndarray) -> Model:
    layers = list(model.layers)
    op = layers[index].op
    fields = {"weight": op.weight, "filters": op.filters, "bias_linear": op.bias_linear, "bias_conv": op.bias_conv}
    layers[index] = replace(layers[index], op=BaseConv(**{**fields, **changes}))
    return Model(model.stream, tuple(layers), model.name)


def window_filter_builder(params: LinearAttentionParams, seq_len: int, **kw: str) -> Model:
    """The cumsum layer's all-ones filter cut to 2 taps: a sliding window, not the prefix sum."""
    model = linear_attention_as_baseconv(params, seq_len, **kw)
    filters = np.array(model.layers[-2].op.filters)
    filters[2:] = 0
    return _replace_layer(model, len(model.layers) - 2, filters=filters)


def extra_layer_builder(params: LinearAttentionParams, seq_len: int, **kw: str) -> Model:
    """The same map with one more (identity) BaseConv layer: the output is right, the resources are not."""
    model = linear_attention_as_baseconv(params, seq_len, **kw)
    w = model.width
    ident = BaseConv(weight=np.zeros((w, w)), filters=np.ones((1, w)), bias_linear=np.ones(w), bias_conv=np.zeros(w))
    return Model(model.stream, (*model.layers, Layer(ident, la.BLOCKS, la.BLOCKS, residual=False)), model.name)


@pytest.mark.parametrize("feature_map, layout", MAPS)
def test_a_wrong_filter_is_caught(feature_map: str, layout: str) -> None:
    point = SimulationPoint(5, 2, 2, 2, feature_map, layout, exact=True)
    bad = simulation_mismatch(point, builder=window_filter_builder)
    assert bad is not None and bad["backend"] == "float64"
    assert simulation_mismatch(replace(point, seq_len=2), builder=window_filter_builder) is None  # 2 taps cover N = 2
    sym = symbolic_mismatch(SimulationPoint(3, 1, 1, 1, feature_map, layout), builder=window_filter_builder)
    assert sym is not None and sym["backend"] == "symbolic"


def test_an_extra_layer_is_caught() -> None:
    bad = simulation_mismatch(SimulationPoint(4, 2, 2, 2), builder=extra_layer_builder)
    assert bad is not None and bad["resources"]["layers"] == {"claimed": 4, "measured": 5}


# --------------------------------------------------------------------------------------------------------------------
# H3


def test_h3_simulation_passes_and_reports_its_range() -> None:
    ok, covered, counterexample = h3_simulation_mismatch([(1, 1), (5, 2), (12, 2), (33, 3)])
    assert ok and counterexample is None
    assert "(33, 3)" in covered and "exact over Q (==) at (N, d) in [(1, 1), (5, 2), (12, 2)]" in covered


def test_h3_simulation_fails_on_a_wrong_model(monkeypatch: pytest.MonkeyPatch) -> None:
    real = h3_gated.h3_as_baseconv
    monkeypatch.setattr(h3_gated, "h3_as_baseconv", lambda p, n: real(replace(p, wq=p.wk, wk=p.wq), n))
    ok, _, counterexample = h3_simulation_mismatch([(6, 2)])
    assert not ok
    assert counterexample["seq_len"] == 6 and counterexample["backend"] == "float64"


def test_h3_simulation_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match=r"budget_sizes: \(0, 2\)"):
        h3_simulation_mismatch([(0, 2)])
