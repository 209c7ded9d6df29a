from __future__ import annotations

import pytest

from mqarkit.proofs_checks import catalog
from mqarkit.proofs_checks.registry import (
    Budget,
    Check,
    CheckOutcome,
    Claim,
    budget,
    claim_status,
    failed,
    not_run,
    passed,
    run_claim,
)


def _claim(*checks: Check, reason: str = "") -> Claim:
    return Claim("X1", "a statement", "[test]", lambda: list(checks), open_reason=reason)


def test_claim_without_checks_is_open_with_reason() -> None:
    r = run_claim(_claim(reason="no machine check"), budget("default"))
    assert r.status == "open"
    assert r.reason == "no machine check"
    assert r.as_dict()["checks"] == []


def test_not_run_check_leaves_claim_open() -> None:
    r = run_claim(_claim(Check("c", "numeric", "d", lambda ctx: not_run("missing"))), budget("default"))
    assert r.status == "open"
    assert "missing" in r.reason


def test_failing_check_makes_claim_failed_and_carries_counterexample() -> None:
    good = Check("good", "exhaustive", "d", lambda ctx: passed("n <= 3"))
    bad = Check("bad", "property", "d", lambda ctx: failed("n <= 5", {"n": 4, "x": [1, 0]}, "wrong answer"))
    r = run_claim(_claim(good, bad), budget("default"))
    assert r.status == "failed"
    d = r.as_dict()
    assert d["checks"][1]["counterexample"] == {"n": 4, "x": [1, 0]}
    assert d["checks"][1]["outcome"] == "failed"


def test_raising_check_is_a_failure_not_a_pass() -> None:
    def boom(ctx: object) -> CheckOutcome:
        raise RuntimeError("kaput")

    r = run_claim(_claim(Check("boom", "numeric", "d", boom)), budget("default"))
    assert r.status == "failed"
    assert "kaput" in r.as_dict()["checks"][0]["counterexample"]["error"]


def test_passed_and_not_run_is_partial_and_names_what_did_not_run() -> None:
    r = run_claim(
        _claim(
            Check("a", "symbolic", "d", lambda ctx: passed("m <= 4")),
            Check("b", "numeric", "d", lambda ctx: not_run("x")),
        ),
        budget("full"),
    )
    assert r.status == "partial"
    assert r.covered() == "m <= 4" and r.missing == "b did not run: x"


def test_unchecked_part_makes_a_passing_claim_partial() -> None:
    claim = Claim("X9", "s", "[t]", lambda: [Check("a", "symbolic", "d", lambda ctx: passed("m <= 4"))],
                  unchecked="the asymptotic part")  # fmt: skip
    r = run_claim(claim, budget("default"))
    assert r.status == "partial" and r.missing == "the asymptotic part"
    assert r.as_dict()["missing"] == "the asymptotic part"


def test_all_passed_and_nothing_unchecked_is_verified() -> None:
    r = run_claim(_claim(Check("a", "symbolic", "d", lambda ctx: passed("m <= 4"))), budget("default"))
    assert r.status == "verified" and r.missing == ""


def test_outcome_rules() -> None:
    with pytest.raises(ValueError, match="counterexample"):
        CheckOutcome("failed", "", counterexample=None, reason="r")
    with pytest.raises(ValueError, match="reason"):
        CheckOutcome("not_run", "")
    with pytest.raises(ValueError, match="covered"):
        CheckOutcome("passed", "")
    with pytest.raises(ValueError, match="kind"):
        Check("x", "vibes", "d", lambda ctx: passed("x"))
    with pytest.raises(ValueError, match="budget"):
        budget("huge")
    with pytest.raises(ValueError, match="budget='huge'"):
        Budget("huge")
    assert claim_status([]) == "open"
    assert claim_status([passed("x")], unchecked="y") == "partial"


def test_catalog_lists_every_claim_of_theory() -> None:
    ids = [c.id for c in catalog.all_claims()]
    paper = [f"U{i}" for i in range(1, 11)] + [f"L{i}" for i in range(1, 7)] + [f"E{i}" for i in range(1, 14)]
    assert ids == [*paper, "X1", "X2", "X3"]
    with pytest.raises(ValueError, match="known ids: U1"):
        catalog.select(["U1", "Q7"])
