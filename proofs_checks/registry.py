"""The claim registry: claims, their checks, how a claim's status follows from what ran, and its JSON form.

A **claim** (theory.md section 3, U1-U9 / L1-L6; the errata of section 7, E1-E13; and the toolkit's own results X1-X2)
is an id, a statement, a source, a list of **checks** and, where the checks cannot reach part of the statement, the
text of that part (``unchecked``). A check has a kind (``symbolic`` / ``exhaustive`` / ``property`` / ``numeric`` /
``adversarial``) and a description; run under a :class:`Budget` it returns a :class:`CheckOutcome`: ``passed``,
``failed`` (with the counterexample it found) or ``not_run`` (with the reason), and in every case the range it
covered, computed by the check from what it ran.

A budget is a *name* for fixed grids and instance seeds, nothing else: a check reads ``ctx.budget.full`` to pick its
grid, never the clock, so the same command gives the same claims, statuses and ranges on every machine (the report
differs only in its timings).

Status of a claim (:func:`claim_status`), the honesty rule of the toolkit (design.md, "Words that carry weight"):

- ``failed``   if any check failed (or raised): a counterexample exists;
- ``open``     if no check passed (nothing ran, or a claim without checks, with its reason);
- ``partial``  if checks passed but part of the statement is checked by none of them: the claim's ``unchecked``
  text, or a check that did not run. The report says which part;
- ``verified`` if every check passed and the claim lists no unchecked part: the statement as written is checked over
  the ranges the checks report (finite grids; the report lists them).

Everything here is data: :meth:`ClaimResult.as_dict` is JSON-serialisable and is what the report, the tables and the
docs read.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("symbolic", "exhaustive", "property", "numeric", "adversarial")
OUTCOMES = ("passed", "failed", "not_run")
STATUSES = ("verified", "partial", "open", "failed")


@dataclass(frozen=True)
class Budget:
    """Which fixed grids the checks run: ``default`` (small, about a minute on one core) or ``full`` (larger)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in BUDGET_NAMES:
            raise ValueError(f"budget={self.name!r}: must be one of {BUDGET_NAMES}")

    @property
    def full(self) -> bool:
        return self.name == "full"


BUDGET_NAMES = ("default", "full")
BUDGETS: dict[str, Budget] = {name: Budget(name) for name in BUDGET_NAMES}


def budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"budget={name!r}: must be one of {sorted(BUDGETS)}")
    return BUDGETS[name]


@dataclass(frozen=True)
class CheckContext:
    """What a running check sees: the budget (it picks the check's fixed grid)."""

    budget: Budget


@dataclass(frozen=True)
class CheckOutcome:
    outcome: str  # one of OUTCOMES
    covered: str  # the range that actually ran, e.g. "exhaustive for m <= 4"; for not_run: ""
    counterexample: Any = None  # JSON-serialisable; set when outcome == "failed"
    reason: str = ""  # why not run / what failed
    details: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable figures the report may show

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome={self.outcome!r}: must be one of {OUTCOMES}")
        if self.outcome == "failed" and self.counterexample is None:
            raise ValueError("counterexample: a failed check must carry its counterexample")
        if self.outcome == "not_run" and not self.reason:
            raise ValueError("reason: a check that did not run must say why")
        if self.outcome == "passed" and not self.covered:
            raise ValueError("covered: a passed check must state the range it covered")


def passed(covered: str, **details: Any) -> CheckOutcome:
    return CheckOutcome("passed", covered, details=details)


def failed(covered: str, counterexample: Any, reason: str, **details: Any) -> CheckOutcome:
    return CheckOutcome("failed", covered, counterexample=counterexample, reason=reason, details=details)


def not_run(reason: str) -> CheckOutcome:
    return CheckOutcome("not_run", "", reason=reason)


@dataclass(frozen=True)
class Check:
    """A machine check: ``run(ctx) -> CheckOutcome``."""

    name: str
    kind: str
    description: str
    run: Callable[[CheckContext], CheckOutcome]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}: must be one of {KINDS}")


@dataclass(frozen=True)
class Claim:
    """A statement to check. ``checks`` returns the checks at run time (constructions are discovered then);
    ``unchecked`` names the part of the statement that no check reaches (then the claim is at most ``partial``);
    ``open_reason`` says why a claim without checks stays open."""

    id: str
    statement: str
    source: str
    checks: Callable[[], list[Check]]
    open_reason: str = ""
    unchecked: str = ""


@dataclass(frozen=True)
class CheckResult:
    check: Check
    outcome: CheckOutcome
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "name": self.check.name,
            "kind": self.check.kind,
            "description": self.check.description,
            "outcome": o.outcome,
            "covered": o.covered,
            "counterexample": o.counterexample,
            "reason": o.reason,
            "details": o.details,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    results: tuple[CheckResult, ...]

    @property
    def status(self) -> str:
        return claim_status([r.outcome for r in self.results], unchecked=self.claim.unchecked)

    @property
    def reason(self) -> str:
        """Why an open claim is open: its own reason, else the reasons of the checks that did not run."""
        if self.status != "open":
            return ""
        reasons = [r.outcome.reason for r in self.results if r.outcome.reason]
        return "; ".join([self.claim.open_reason, *reasons] if self.claim.open_reason else reasons) or "no check"

    @property
    def missing(self) -> str:
        """What of the statement is not checked, for a ``partial`` claim: its ``unchecked`` part and the checks that
        did not run (empty otherwise)."""
        if self.status != "partial":
            return ""
        skipped = [
            f"{r.check.name} did not run: {r.outcome.reason}" for r in self.results if r.outcome.outcome == "not_run"
        ]
        return "; ".join([p for p in (self.claim.unchecked, *skipped) if p])

    def covered(self) -> str:
        """The ranges of the checks that ran, joined."""
        return "; ".join(r.outcome.covered for r in self.results if r.outcome.outcome != "not_run")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.claim.id,
            "statement": self.claim.statement,
            "source": self.claim.source,
            "status": self.status,
            "reason": self.reason,
            "missing": self.missing,
            "covered": self.covered(),
            "checks": [r.as_dict() for r in self.results],
        }


def claim_status(outcomes: Iterable[CheckOutcome], unchecked: str = "") -> str:
    """``failed`` if any failed; ``open`` if none passed; ``partial`` if some passed but a check did not run or
    ``unchecked`` names a part no check reaches; ``verified`` otherwise."""
    kinds = [o.outcome for o in outcomes]
    if "failed" in kinds:
        return "failed"
    if "passed" not in kinds:
        return "open"
    if unchecked or "not_run" in kinds:
        return "partial"
    return "verified"


def run_check(check: Check, budget: Budget) -> CheckResult:
    """Run one check. An exception is a failure whose counterexample is the error."""
    ctx = CheckContext(budget=budget)
    t0 = time.perf_counter()
    try:
        outcome = check.run(ctx)
        if not isinstance(outcome, CheckOutcome):
            raise TypeError(f"check {check.name!r} returned {type(outcome).__name__}, not CheckOutcome")
    except Exception as exc:  # a crashing check must never count as passed or open
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        outcome = CheckOutcome("failed", "", counterexample={"error": tb}, reason=f"check raised {tb}")
    return CheckResult(check, outcome, time.perf_counter() - t0)


def run_claim(claim: Claim, budget: Budget, on_check: Callable[[Claim, Check], None] | None = None) -> ClaimResult:
    try:
        checks = claim.checks()
    except Exception as exc:  # discovering the checks failed (e.g. a construction module does not import)
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()

        def _raise(ctx: CheckContext, _tb: str = tb) -> CheckOutcome:
            return CheckOutcome("failed", "", counterexample={"error": _tb}, reason=f"collecting checks raised {_tb}")

        checks = [Check("collect", "property", "collect the claim's checks", _raise)]
    results = []
    for check in checks:
        if on_check is not None:
            on_check(claim, check)
        results.append(run_check(check, budget))
    return ClaimResult(claim, tuple(results))
