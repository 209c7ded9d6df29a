"""The checks issue 19 added: resources against the statements (U1-U4), U2's adversarial minimum, the mask claim (X2),
the argmax depth (X1), L2's layer degree and L6 on models. Each passes on the real objects and fails, with a
counterexample, on a broken input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mqarkit.constructions import build
from mqarkit.proofs_checks import argmax_depth, claims_lower, mask_claim, resource_bounds, signcode_adversarial
from mqarkit.proofs_checks import lower_bounds as lb
from mqarkit.proofs_checks.registry import Budget, CheckContext
from mqarkit.task import MQARSpec
from mqarkit.tolerances import assert_close


def ctx() -> CheckContext:
    return CheckContext(budget=Budget("default"))


# ------------------------------------------------------------------------------------------------------- U1-U4 sizes


def test_u3_statement_check_passes_and_reports_dense_and_nonzero_counts() -> None:
    out = resource_bounds.check_u3_against_statement(ctx())
    assert out.outcome == "passed"
    table = out.details["table"]
    factored = [r for r in table if r["variant"] == "factored"]
    dense = [r for r in table if r["variant"] == "dense broadcast"]
    assert max(r["N"] for r in table) == 1024 and {r["c"] for r in table} == {8192}
    assert all(r["nonzero/(t*N*c)"] <= resource_bounds.U3_CONSTANT and r["layers"] == 3 for r in factored)
    assert all(r["nonzero/(t*N*c)"] > 8 for r in dense)  # [Z]'s all-ones broadcast: a factor ~ c/N above
    assert all(r["dense/(t*N*c)"] > 1 for r in factored + dense)  # erratum E9: a dense W of width 2tc costs d^2
    assert all(r["dense/(t*N*c)"] < 1 for r in table if r["variant"] == "sign")  # width 2tm: even dense is small


def test_u3_statement_check_fails_when_the_dense_broadcast_is_held_to_the_bound() -> None:
    swapped = {"factored": {}, "sign": {"encoding": "sign"}}  # the dense broadcast under the factored label
    out = resource_bounds.check_u3_against_statement(ctx(), variants=swapped)
    assert out.outcome == "failed" and out.counterexample["variant"] == "factored"
    assert out.counterexample["nonzero"] > resource_bounds.U3_CONSTANT * out.counterexample["t*N*c"]


def test_u4_statement_check_passes_and_fails_for_the_per_lag_gates() -> None:
    out = resource_bounds.check_u4_against_statement(ctx())
    assert out.outcome == "passed"
    per_lag = [r for r in out.details["table"] if r["variant"] == "per-lag gates"]
    assert [r["nonzero/(N*log2 c)"] for r in per_lag][::2] == [10.2, 15.7, 72.7]  # grows with D, as issue 19 measured
    swapped = {"shared gate": {}}
    bad = resource_bounds.check_u4_against_statement(ctx(), variants=swapped)
    assert bad.outcome == "failed" and bad.counterexample["nonzero"] > resource_bounds.u4_bound(
        8192, bad.counterexample["N"]
    )


def test_formulas_against_built_models_and_a_wrong_formula_fails() -> None:
    out = resource_bounds.check_formulas_against_built(ctx(), instances=1)
    assert out.outcome == "passed" and out.details["examples"] > 0

    def off_by_one(lags: list[int], **sizes: Any) -> int:
        from mqarkit.constructions import construction_class

        return construction_class(resource_bounds.INPUT_DEPENDENT).nonzero_parameters_for(lags, **sizes) + 1

    bad = resource_bounds.check_formulas_against_built(ctx(), nonzero_rule=off_by_one, instances=1)
    assert bad.outcome == "failed" and bad.counterexample["formula"] == bad.counterexample["built_nonzero"] + 1


def test_u1_u2_statement_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resource_bounds.check_u1_against_statement(ctx()).outcome == "passed"
    assert resource_bounds.check_u2_against_statement(ctx()).outcome == "passed"
    import mqarkit.constructions as constructions

    real = constructions.claimed_resources

    def wider(name: str, **kw: Any) -> Any:  # a width that grows with N breaks "independent of N"
        r = real(name, **kw)
        return type(r)(**{**r.as_dict(), "width": r.width + kw["seq_len"]})

    monkeypatch.setattr(constructions, "claimed_resources", wider)
    assert resource_bounds.check_u1_against_statement(ctx()).outcome == "failed"
    assert resource_bounds.check_u2_against_statement(ctx()).outcome == "failed"


# ------------------------------------------------------------------------------------------------------------ U2


def test_adversarial_family_reaches_the_analytic_minimum() -> None:
    out = signcode_adversarial.check_worst_case_margin(ctx())
    assert out.outcome == "passed"
    rows = out.details["table"]
    assert all(r["margin_x_m"] >= 1.0 for r in rows)  # the proven bound
    assert min(r["margin_x_m"] for r in rows) < 1.202  # and the family comes within 0.2% of 1.2/m
    assert all(abs(r["margin_x_m"] - r["margin32_x_m"]) < 1e-3 for r in rows)


def test_adversarial_check_fails_against_a_wrong_minimum() -> None:
    out = signcode_adversarial.check_worst_case_margin(ctx(), margin_rule=lambda n, m, beta, mask: 1.0 / m)
    assert out.outcome == "failed" and "worst_case_margin" in out.reason


def test_numpy_lookup_equals_the_construction() -> None:
    con = build("attention_signcode", vocab_size=64, seq_len=16, num_kv_pairs=2, mask="causal")
    x = np.random.default_rng(0).integers(0, 64, size=(2, 16))
    assert_close(signcode_adversarial.lookup_scores(con, x, np.float64), con.readout_scores(x))


# ------------------------------------------------------------------------------------------------------------ X2


def test_mask_checks_pass_with_witnesses() -> None:
    out = mask_claim.check_masks_exhaustive(ctx())
    assert out.outcome == "passed" and out.details["ambiguous_differ"] > 0
    w = out.details["witness"]
    t = w["query_position"]
    assert w["inputs"][t - 1] == w["inputs"][t] and w["causal"] != w["strict"]  # the query's own pair matched
    assert mask_claim.check_masks_random_filler(ctx()).outcome == "passed"


def test_all_random_filler_instances_by_count() -> None:
    batch = mask_claim.all_random_filler_instances(8, 6, 1)
    assert batch.num_examples == 3 * 4 * 2 * 8**3  # keys x values x query slots x fillers on 3 free positions
    pairs = {(tuple(x), tuple(q)) for x, q in zip(batch.inputs.tolist(), batch.query_positions.tolist())}
    assert len(pairs) == batch.num_examples  # distinct instances (a filler may copy the key onto another query slot)


def _broken_causal(name: str, batch: Any) -> dict[str, np.ndarray]:
    """The strict predictions, and a "causal" one that is wrong at the first unambiguous query."""
    from mqarkit.oracle import ambiguous_queries

    strict = mask_claim._predict_both(name, batch)["strict"]
    causal = strict.copy()
    r, j = np.argwhere(~np.take_along_axis(ambiguous_queries(batch), batch.query_positions, axis=1))[0]
    causal[r, batch.query_positions[r, j]] += 1
    return {"strict": strict, "causal": causal}


def test_mask_check_fails_when_a_mask_changes_an_unambiguous_query() -> None:
    out = mask_claim.check_masks_exhaustive(ctx(), predict=_broken_causal)
    assert out.outcome == "failed" and out.counterexample["causal"] == out.counterexample["strict"] + 1


def test_mask_check_fails_without_a_witness() -> None:
    def same(name: str, batch: Any) -> dict[str, np.ndarray]:
        strict = mask_claim._predict_both(name, batch)["strict"]
        return {"strict": strict, "causal": strict}

    out = mask_claim.check_masks_exhaustive(ctx(), predict=same)
    assert out.outcome == "failed" and "no ambiguous query" in out.reason


# ------------------------------------------------------------------------------------------------------------ X1


def test_certificate_by_hand() -> None:
    numbers = argmax_depth.certificate()
    assert numbers == {"max_low_degree_correlation": 0, "min_h_times_g": 0, "total_weight": 8, "subsets": 11,
                       "points": 16}  # fmt: skip


def test_lower_bounds_pass_and_a_degree_two_certificate_fails() -> None:
    assert argmax_depth.check_lower_bounds(ctx()).outcome == "passed"

    def weak() -> dict[str, Any]:  # h = x y: correlated with a degree-2 monomial, so it rules nothing out
        return {**argmax_depth.certificate(), "max_low_degree_correlation": 16}

    bad = argmax_depth.check_lower_bounds(ctx(), cert=weak)
    assert bad.outcome == "failed"


def test_restriction_instances_realise_the_selector() -> None:
    from mqarkit.proofs_checks.instances import oracle_labels

    for inst in argmax_depth.restriction_instances(32, 16, 3):
        x, y, p, q = inst["z"]
        answer = oracle_labels(inst["tokens"][None], 3)[0, inst["query_position"]]
        assert (1 if answer & 1 else -1) == (p if x * y == 1 else q)


def test_construction_depths_pass_and_one_layer_too_few_fails() -> None:
    from mqarkit.constructions.baseconv_argmax_lookup import argmax_depth as depth

    out = argmax_depth.check_construction_depths(ctx())
    assert out.outcome == "passed" and out.details["one_less_fails"] > 0
    table = {(r["m"], r["D"]): r for r in out.details["table"]}
    assert table[(13, 2)]["smallest found"] == 2 and table[(13, 2)]["L2 (exact output)"] == 5
    assert table[(13, 3)]["smallest found"] == 4 < table[(13, 3)]["exact-output construction"]
    bad = argmax_depth.check_construction_depths(ctx(), depth_rule=lambda c, d: max(2, depth(c, d) - 1))
    assert bad.outcome == "failed"


# ------------------------------------------------------------------------------------------------------- L2, L6


def test_layer_degree_check() -> None:
    out = claims_lower.check_layer_degree(ctx())
    assert out.outcome == "passed" and "2^L" in out.covered


def test_fano_against_the_optimum_and_a_too_strong_bound_fails() -> None:
    out = claims_lower.check_fano_against_optimum(ctx())
    assert out.outcome == "passed"
    assert all(r["optimal_error"] >= r["fano_bound"] for r in out.details["table"])
    bad = claims_lower.check_fano_against_optimum(ctx(), bound=lambda s, d, v: lb.fano_min_error(s, d, v) + 0.5)
    assert bad.outcome == "failed"


def test_optimal_mean_error_by_hand() -> None:
    assert lb.optimal_mean_error(2, 1, 0) == 0.5  # one bit unknown, no state: guess
    assert lb.optimal_mean_error(2, 1, 1) == 0.0
    assert_close(lb.optimal_mean_error(3, 1, 1), 1 / 3)  # 3 values, 2 states: one state holds two of them
    with pytest.raises(ValueError, match="too many partitions"):
        lb.optimal_mean_error(5, 3, 2)


def test_worst_case_family_is_a_valid_clean_instance() -> None:
    from mqarkit.constructions.attention_signcode import worst_case_batch
    from mqarkit.oracle import ambiguous_queries, expected_answers

    batch = worst_case_batch(MQARSpec(64, 32, 1, filler="clean"))
    assert not ambiguous_queries(batch).any()
    assert expected_answers(batch)[0, 30] == batch.labels[0, 30] == 2 + 32


# ------------------------------------------------------------------------------------------------------------ X3


def test_delta_capacity_checks_pass() -> None:
    from mqarkit.proofs_checks import delta_capacity

    assert delta_capacity.check_rank_bound(ctx()).outcome == "passed"
    out = delta_capacity.check_last_write_exact(ctx())
    assert out.outcome == "passed" and out.details["earlier_exact"] < out.details["earlier"]
    curve = delta_capacity.check_capacity_curve(ctx())
    assert curve.outcome == "passed"
    beyond = [r["recall"] for r in curve.details["table"] if r["D"] > r["d_k"]]
    assert beyond == sorted(beyond, reverse=True) and beyond[0] < 1.0


def test_exact_rank_by_hand() -> None:
    from fractions import Fraction

    from mqarkit.proofs_checks.delta_capacity import exact_rank

    f = np.vectorize(Fraction, otypes=[object])
    assert exact_rank(f(np.array([[1, 2], [2, 4], [0, 1]]))) == 2
    assert exact_rank(f(np.zeros((3, 3), dtype=np.int64))) == 0


def test_delta_capacity_checks_fail_on_a_broken_delta_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from mqarkit.proofs_checks import delta_capacity

    monkeypatch.setattr(delta_capacity, "run_writes", lambda keys, values, order: values.copy())  # "stores everything"
    assert delta_capacity.check_rank_bound(ctx()).outcome == "failed"
    monkeypatch.setattr(delta_capacity, "run_writes", lambda keys, values, order: 0 * values)  # "stores nothing"
    assert delta_capacity.check_last_write_exact(ctx()).outcome == "failed"
    monkeypatch.setattr(delta_capacity, "float_reads", lambda keys, values: values.copy())  # no capacity limit
    bad = delta_capacity.check_capacity_curve(ctx())
    assert bad.outcome == "failed" and "beyond d_k" in bad.reason
