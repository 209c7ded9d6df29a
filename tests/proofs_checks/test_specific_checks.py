"""Claim-specific checks (U2, U4, U5, U8, U9, E7): each passes on the real constructions and fails, with a
counterexample, when fed a deliberately wrong rule (too small a beta, a wrong window, a wrong prediction, a compiler
that ignores causality, a construction shallower than L2)."""

from __future__ import annotations

import pytest

import mqarkit.constructions as constructions
import mqarkit.polynomials as polynomials
from mqarkit.constructions import Resources
from mqarkit.constructions.attention_signcode import guaranteed_margin
from mqarkit.constructions.sliding_window import expected_accuracy, recalled
from mqarkit.proofs_checks import (
    autocorrelation_witness,
    baseconv_depth,
    catalog,
    circuit_compile,
    signcode_beta,
    taylor_capacity,
    window_recall,
)
from mqarkit.proofs_checks.registry import Budget, CheckContext, budget, run_claim
from mqarkit.tolerances import assert_close

SMALL = Budget("default")  # the default grids (fixed: no time share, the same points on every machine)


def ctx() -> CheckContext:
    return CheckContext(budget=SMALL)


# ------------------------------------------------------------------------------------------------------------ U2


def test_sufficient_beta_passes_and_reports_the_minimum_margin() -> None:
    out = signcode_beta.check_sufficient_beta(ctx())
    assert out.outcome == "passed"
    assert out.details["min_margin_over_guaranteed"] >= 1.0 - 1e-9
    assert "minimum measured margin" in out.covered


def test_too_small_beta_fails_with_the_instance() -> None:
    out = signcode_beta.check_sufficient_beta(ctx(), beta_rule=lambda n, m: 0.5 * m)
    assert out.outcome == "failed"
    ce = out.counterexample
    assert ce["margin"] < guaranteed_margin(ce["code_width"])
    assert len(ce["inputs"]) == ce["seq_len"] and ce["beta"] == 0.5 * ce["code_width"]


def test_decoy_fails_below_the_bound_and_the_check_fails_at_the_proven_beta() -> None:
    out = signcode_beta.check_decoy_fails_below(ctx())
    assert out.outcome == "passed"
    assert all(r["sufficient_over_failure"] < 3.0 for r in out.details["rows"])
    # at 3 x failure_beta >= sufficient_beta the theorem says the decoy (a clean instance) is solved: the check fails
    above = signcode_beta.check_decoy_fails_below(ctx(), factor=3.0)
    assert above.outcome == "failed"
    ce = above.counterexample
    last_value = ce["inputs"][2 * ce["num_kv_pairs"] - 1]  # the value of the decoyed (last) key
    assert ce["predicted"] == last_value


def test_query_margins_by_hand() -> None:
    import numpy as np

    scores = np.array([[[0.0, 0.5, 0.2], [0.9, 0.1, 0.3]]])  # (n=1, N=2, c=3)
    margins = signcode_beta.query_margins(scores, np.array([[1, 0]]), np.array([[0, 0]]))  # queries at 1 and 0
    assert_close(margins, np.array([[0.9 - 0.3, 0.0 - 0.5]]))


# ------------------------------------------------------------------------------------------------------------ U8


def test_recall_set_passes_with_recalled_and_fails_with_a_wrong_window() -> None:
    out = window_recall.check_recall_set(ctx())
    assert out.outcome == "passed"
    assert out.details["recalled"] > 0 and out.details["missed"] > 0  # both sides of the iff were exercised
    bad = window_recall.check_recall_set(ctx(), recall_rule=lambda b, w: recalled(b, w + 2))
    assert bad.outcome == "failed"
    ce = bad.counterexample
    assert ce["marked_recalled"] and ce["predicted"] != ce["expected"]


def test_expected_accuracy_monte_carlo_with_z_scores_and_a_wrong_window_is_caught() -> None:
    out = window_recall.check_expected_accuracy(ctx())
    assert out.outcome == "passed"
    rows = out.details["table"]
    assert sum(r["queries"] for r in rows) >= 20_000 and len(rows) == 12
    assert all(abs(r["z"]) <= window_recall.Z_MAX for r in rows)
    assert any(0 < r["expected"] < 1 for r in rows) and "pooled error" in out.covered
    bad = window_recall.check_expected_accuracy(ctx(), accuracy_rule=lambda s, w: expected_accuracy(s, 2 * w))
    assert bad.outcome == "failed"
    assert abs(bad.counterexample["z"]) > window_recall.Z_MAX


def test_monte_carlo_settings_are_fixed_and_valid() -> None:
    settings = window_recall.monte_carlo_settings(full=False)
    assert settings == window_recall.monte_carlo_settings(full=False)
    assert all(n in (32, 48, 64) and 1 <= d <= n // 4 and 0.01 <= a <= 1 and 1 <= w <= n for n, d, a, w in settings)


def test_z_score_by_hand() -> None:
    import numpy as np

    z, se = window_recall.z_score(np.array([0.0, 1.0, 1.0, 0.0]), 0.25)
    assert_close(se, np.std([0, 1, 1, 0], ddof=1) / 2)
    assert_close(z, 0.25 / se)
    assert window_recall.z_score(np.array([1.0, 1.0]), 1.0) == (0.0, 0.0)
    assert window_recall.z_score(np.array([1.0, 1.0]), 1.0 - 1e-10, tolerance=1e-9) == (0.0, 0.0)
    assert window_recall.z_score(np.array([1.0, 1.0]), 0.5) == (None, 0.0)  # no noise and a gap: a definite mismatch
    with pytest.raises(ValueError, match="per_example"):
        window_recall.z_score(np.array([1.0]), 0.5)


def test_expected_accuracy_that_refuses_fails_the_claim() -> None:
    from mqarkit.proofs_checks.registry import Check, run_check

    def refuse(spec: object, window: int) -> float:
        raise ArithmeticError("quadrature row error exceeds 1e-9")

    check = Check("u8", "numeric", "d", lambda c: window_recall.check_expected_accuracy(c, accuracy_rule=refuse))
    result = run_check(check, SMALL)
    assert result.outcome.outcome == "failed" and "quadrature" in result.outcome.reason


def test_wilson_interval() -> None:
    lo, hi = window_recall.wilson_interval(50, 100)
    assert lo < 0.5 < hi
    assert_close(lo + hi, 1.0)  # symmetric around 1/2
    z = window_recall.Z_999  # 0 successes: [0, z^2 / (n + z^2)]
    assert_close(window_recall.wilson_interval(0, 10), (0.0, z * z / (10 + z * z)))
    assert_close(window_recall.wilson_interval(10, 10)[1], 1.0)
    with pytest.raises(ValueError, match="trials"):
        window_recall.wilson_interval(3, 2)


# ------------------------------------------------------------------------------------------------------------ U9


def test_regime_a_exact_on_zero_filler() -> None:
    out = taylor_capacity.check_regime_a_zero_filler(ctx())
    assert out.outcome == "passed" and out.details["queries"] > 0


def test_capacity_within_the_stated_tolerance_and_a_wrong_prediction_fails() -> None:
    out = taylor_capacity.check_regime_b_capacity(ctx())
    assert out.outcome == "passed"
    assert out.details["max_gap"] < taylor_capacity.CAPACITY_TOLERANCE
    for row in out.details["table"]:  # the error is reported with its standard error, not only bounded
        assert_close(row["error"], row["measured"] - row["predicted"], dtype="float32")
        assert row["se"] > 0 and "+-" in out.covered
    bad = taylor_capacity.check_regime_b_capacity(ctx(), predictor=lambda c, d: 1.0)
    assert bad.outcome == "failed" and bad.counterexample["gap"] >= taylor_capacity.CAPACITY_TOLERANCE


def test_regime_b_exact_condition_and_the_sufficient_condition_is_not_an_iff() -> None:
    import numpy as np

    from mqarkit.constructions._attention_codes import sign_bits, sign_code_width
    from mqarkit.constructions.based_taylor import taylor_kernel

    out = taylor_capacity.check_regime_b_exact_condition(ctx())
    assert out.outcome == "passed"
    assert out.details["recalled"] > 0 and out.details["missed"] > 0

    def sufficient(batch: object, c: int) -> np.ndarray:  # sum_{j != i} Kern_j < K*: sufficient, not necessary
        m = sign_code_width(c)
        codes = sign_bits(c, m)[batch.keys]  # (n, D, m)
        kern = taylor_kernel(np.einsum("nim,njm->nij", codes, codes))
        return np.where(kern.sum(axis=2) - taylor_kernel(m) < taylor_kernel(m), 1, -1)

    bad = taylor_capacity.check_regime_b_exact_condition(ctx(), condition=sufficient)
    assert bad.outcome == "failed"
    assert bad.counterexample["predicted"] == bad.counterexample["expected"]  # recalled without the sufficient one


# ------------------------------------------------------------------------------------------------------------ U5


def test_circuit_compile_passes() -> None:
    out = circuit_compile.check_circuits_compile(CheckContext(budget=budget("default")))
    assert out.outcome == "passed"
    assert out.details["causal_exact"] > 0 and out.details["refused_genuine"] > 0


def test_a_compiler_that_ignores_causality_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = polynomials.compile_to_baseconv

    def always_cyclic(circuit, *, seq_len=None, cyclic=False):  # the erratum-8 mistake: no causal refusal
        return real(circuit, seq_len=seq_len, cyclic=True)

    monkeypatch.setattr(polynomials, "compile_to_baseconv", always_cyclic)
    out = circuit_compile.check_circuits_compile(CheckContext(budget=budget("default")))
    assert out.outcome == "failed"
    assert out.counterexample["violations"]


# ------------------------------------------------------------------------------------------------------------ U4, E7


def test_depth_vs_l2_states_meets_and_excess() -> None:
    out = baseconv_depth.check_depth_vs_l2(CheckContext(budget=budget("default")))
    assert out.outcome == "passed"
    rows = out.details["rows"]
    for r in rows:  # one extra layer exactly when m is a power of two (degree 2m + 1 > 2m = 2^L)
        assert r["excess"] == (1 if r["m"] & (r["m"] - 1) == 0 else 0)
    assert {r["excess"] for r in rows} == {0, 1}


def test_depth_below_l2_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    class Shallow:
        def measured_resources(self) -> Resources:
            return Resources(layers=2, width=1, parameters=1, state_numbers=1, degree=3)

    monkeypatch.setattr(constructions, "build", lambda name, **kw: Shallow())
    out = baseconv_depth.check_depth_vs_l2(ctx())
    assert out.outcome == "failed" and out.counterexample["layers"] < out.counterexample["L2"]


def test_e7_witness_on_the_construction() -> None:
    out = autocorrelation_witness.check_construction_misses_a_lag(ctx())
    assert out.outcome == "passed"
    w = out.details["witness"]
    assert w["missed_lags"] and not set(w["missed_lags"]) & set(w["chosen_lags"])
    assert w["predicted"] != w["expected"]


# ------------------------------------------------------------------------------------------------------------ wiring


def test_u5_is_wired_to_the_compiler_check() -> None:
    (u5,) = catalog.select(["U5"])
    result = run_claim(u5, SMALL)
    assert [r.check.name for r in result.results] == ["compile_to_baseconv:random-circuits", "h3_gated:h3-as-baseconv"]
    assert result.status == "partial" and "poly-log blowup" in result.missing


def test_specific_checks_come_before_generic_ones() -> None:
    (u8,) = catalog.select(["U8"])
    names = [c.name for c in u8.checks()]
    assert names[:2] == ["sliding_window:recall-set", "sliding_window:expected-accuracy"]
    assert "sliding_window:solves" in names


# ------------------------------------------------------------------------------------------------------------ E6


def test_repeated_keys_by_hand() -> None:
    import numpy as np

    from mqarkit.proofs_checks.keys_only_gate import repeated_keys

    x = np.array([[3, 9, 4, 8, 3, 0, 4, 3]])  # keys 3 (slot 0), 4 (slot 2); queries at 4 and 6; a stray 3 at 7
    assert repeated_keys(x, np.array([[0, 2]]), np.array([[4, 6]])) == 1


def test_position_gates_pass_and_an_ungated_lookup_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from mqarkit.proofs_checks.keys_only_gate import check_position_gates_on_repeated_keys

    out = check_position_gates_on_repeated_keys(ctx())
    assert out.outcome == "passed" and out.details["repeated_keys"] > 0

    class Ungated:  # answers with the token after the *latest* earlier copy of the query token: no position gate
        def predict(self, inputs: np.ndarray) -> np.ndarray:
            out = np.zeros_like(inputs)
            for r, x in enumerate(inputs):
                for i in range(len(x)):
                    prev = [j for j in range(i - 1) if x[j] == x[i]]
                    out[r, i] = x[prev[-1] + 1] if prev else 0
            return out

    monkeypatch.setattr(constructions, "build", lambda name, **kw: Ungated())
    bad = check_position_gates_on_repeated_keys(CheckContext(budget=budget("default")))
    assert bad.outcome == "failed" and "inputs" in bad.counterexample


def test_h3_check_passes_and_reports_a_broken_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    from mqarkit.constructions import h3_gated
    from mqarkit.proofs_checks import h3_simulation

    out = h3_simulation.check_h3_equals_baseconv(ctx())
    assert out.outcome == "passed" and "exact over Q" in out.covered
    monkeypatch.setattr(h3_gated, "h3_layer_direct", lambda u, params: h3_gated.h3_layer_recurrent(u, params) + 1)
    bad = h3_simulation.check_h3_equals_baseconv(ctx())
    assert bad.outcome == "failed" and bad.counterexample["seq_len"] == 1
