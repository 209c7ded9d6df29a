"""U6 (depth O(log log c) for the data-independent construction) and U7 (linear attention as BaseConv): the checks
pass on the real constructions, fail with a counterexample on broken ones, and the claims are wired and verified."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mqarkit.constructions import build
from mqarkit.constructions.api import ResourceReport
from mqarkit.constructions.baseconv_linear_attention import BLOCKS, linear_attention_as_baseconv
from mqarkit.polynomials import BaseConv, Layer, Model
from mqarkit.proofs_checks import catalog, u6_depth, u7_linear_attention
from mqarkit.proofs_checks.registry import Budget, CheckContext, run_claim

SMALL = Budget("default")  # the default grids (fixed: the same points on every machine)


def ctx() -> CheckContext:
    return CheckContext(budget=SMALL)


# ------------------------------------------------------------------------------------------------------------ U6


@pytest.mark.parametrize(
    "c, m, depth",
    [(3, 2, 3), (4, 2, 3), (5, 3, 3), (10, 4, 4), (128, 7, 4), (129, 8, 5), (2**15 + 1, 16, 6), (2**16 + 2, 17, 6),
     (2**31, 31, 6), (2**31 + 1, 32, 7)],
)  # fmt: skip
def test_predicted_depth_by_hand(c: int, m: int, depth: int) -> None:
    assert u6_depth.code_width(c) == m
    assert u6_depth.predicted_depth(c) == depth == 1 + math.ceil(math.log2(m + 1))
    assert depth <= 3 + math.log2(math.log2(c))  # the explicit O(log log c) bound the check asserts


def test_code_width_rejects_bad_vocab() -> None:
    with pytest.raises(ValueError, match="vocab_size=1"):
        u6_depth.code_width(1)


def test_depth_points_have_c_above_n_and_several_n_per_c() -> None:
    points = u6_depth.depth_points(full=False)
    assert all(c > n and 4 * d <= n for c, n, d in points)
    lengths = {c: {n for cc, n, _ in points if cc == c} for c, _, _ in points}
    assert all(len(ns) >= 2 for c, ns in lengths.items() if c > 32)
    assert {u6_depth.predicted_depth(c) for c, _, _ in points} == {4, 5, 6}


def test_depth_check_passes_and_reports_ratios() -> None:
    out = u6_depth.check_depth_loglog(ctx())
    assert out.outcome == "passed", out.reason
    rows = out.details["rows"]
    assert rows and all(r["layers"] == r["predicted"] for r in rows)
    assert all(r["ratio"] == round(r["layers"] / math.log2(math.log2(r["c"])), 3) for r in rows)
    assert "c > N only" in out.covered and "layers / log2 log2 c in" in out.covered


class _OneLayerTooMany:
    """The real construction whose measured depth is one more (as if the tree had an extra level)."""

    def __init__(self, c: int, n: int, d: int) -> None:
        self.inner = build(u6_depth.NAME, vocab_size=c, seq_len=n, num_kv_pairs=d)

    def resources(self) -> ResourceReport:
        r = self.inner.resources()
        deeper = type(r.measured)(**{**r.measured.as_dict(), "layers": r.measured.layers + 1})
        return ResourceReport(claimed=r.claimed, measured=deeper)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.inner.predict(inputs)


class _WrongAnswers(_OneLayerTooMany):
    def resources(self) -> ResourceReport:
        return self.inner.resources()

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return (self.inner.predict(inputs) + 1) % self.inner.vocab_size


def test_depth_check_fails_on_one_layer_too_many() -> None:
    out = u6_depth.check_depth_loglog(ctx(), build=_OneLayerTooMany)
    assert out.outcome == "failed"
    ce: dict[str, Any] = out.counterexample
    assert ce["layers"] == ce["predicted"] + 1 and "1 + ceil(log2(m + 1))" in ce["reason"]


def test_depth_check_fails_on_wrong_answers() -> None:
    out = u6_depth.check_depth_loglog(ctx(), build=_WrongAnswers)
    assert out.outcome == "failed" and out.counterexample["reason"] == "wrong answer"
    ce = out.counterexample
    assert ce["got"] != ce["want"] and ce["example"][ce["position"]] in ce["example"][: 2 * ce["D"] : 2]


# ------------------------------------------------------------------------------------------------------------ U7


def test_simulation_check_passes() -> None:
    out = u7_linear_attention.check_simulation(ctx())
    assert out.outcome == "passed", out.reason
    assert "exact over Q (==) at [(1, 1, 1, 1)" in out.covered and "not [B]'s general" in out.covered


def test_symbolic_check_passes_and_states_the_normalised_form() -> None:
    out = u7_linear_attention.check_symbolic(ctx())
    assert out.outcome == "passed", out.reason
    assert out.details["normalised_denominator_degree"] == {"identity": 1, "taylor": 4}


def _window_filter(params: Any, seq_len: int, **kw: str) -> Model:
    """The cumsum layer's all-ones filter cut to 2 taps (a sliding window, not the prefix sum)."""
    model = linear_attention_as_baseconv(params, seq_len, **kw)
    layers = list(model.layers)
    op = layers[-2].op
    filters = np.array(op.filters)
    filters[2:] = 0
    layers[-2] = Layer(BaseConv(op.weight, filters, op.bias_linear, op.bias_conv), BLOCKS, BLOCKS, residual=False)
    return Model(model.stream, tuple(layers), model.name)


def _extra_layer(params: Any, seq_len: int, **kw: str) -> Model:
    """One more BaseConv layer computing the identity: the output is right, the depth is not."""
    model = linear_attention_as_baseconv(params, seq_len, **kw)
    w = model.width
    ident = BaseConv(np.zeros((w, w)), np.ones((1, w)), np.ones(w), np.zeros(w))
    return Model(model.stream, (*model.layers, Layer(ident, BLOCKS, BLOCKS, residual=False)), model.name)


def test_u7_checks_fail_on_a_wrong_filter_and_an_extra_layer() -> None:
    out = u7_linear_attention.check_simulation(ctx(), builder=_window_filter)
    assert out.outcome == "failed" and out.counterexample["backend"] == "float64"
    out = u7_linear_attention.check_simulation(ctx(), builder=_extra_layer)
    assert out.outcome == "failed" and out.counterexample["resources"]["layers"]["measured"] == 5
    out = u7_linear_attention.check_symbolic(ctx(), builder=_window_filter)
    assert out.outcome == "failed" and out.counterexample["backend"] == "symbolic"


# ------------------------------------------------------------------------------------------------------------ wiring


@pytest.mark.parametrize(
    "claim_id, names, missing",
    [("U6", ["depth-loglog"], "log log N dominates"), ("U7", ["simulation", "polynomial"], "poly-log blowup")],
)
def test_claims_are_wired_and_partial(claim_id: str, names: list[str], missing: str) -> None:
    (claim,) = catalog.select([claim_id])
    result = run_claim(claim, SMALL)
    assert [r.check.name.split(":")[1] for r in result.results] == names
    assert all(r.outcome.outcome == "passed" for r in result.results), [r.outcome.reason for r in result.results]
    assert result.status == "partial" and missing in result.missing
