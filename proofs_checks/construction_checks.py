"""Generic checks of any registered construction, through the Construction API alone.

For a construction ``name`` (``mqarkit.constructions.names()``), three checks, each over a grid of sizes drawn in
increasing order and stopped when the check's time share is spent (the range reported is what ran):

- **solves MQAR** (property): on clean instances, ``predict`` equals the oracle label at every query position; the
  exact backend is used when the construction declares one (``exact_backends``), else float64;
- **claimed == measured resources** (exhaustive over the grid points that ran): ``resources().mismatches()`` is empty;
- **causal** (property): the prediction at positions ``<= i`` does not change when every token after ``i`` is
  replaced (erratum E2: an unmasked lookup reads future keys).

The grid is fixed candidates ``(c, N, D)``; a point that the construction's ``validate_sizes`` rejects lies outside
its claimed range and is skipped (counted in the details), so the checks never test outside what is claimed. Points
with ``c``, ``N`` not powers of two are included on purpose (``c = 2N + 2``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mqarkit.proofs_checks.instances import IGNORE, draw_instances
from mqarkit.proofs_checks.point_runner import size_ranges
from mqarkit.proofs_checks.registry import Budget, Check, CheckContext, CheckOutcome, failed, not_run, passed

# Knobs the generic checks pass to constructions that require them (wiring, one line per construction). Each is chosen
# so that the construction claims to solve *all* of MQAR at that size: a sliding window as long as the sequence.
CHECK_KNOBS: dict[str, Callable[[int, int, int], dict[str, Any]]] = {
    "sliding_window": lambda c, n, d: {"window": n},
}


def knobs_for(name: str, vocab_size: int, seq_len: int, num_kv_pairs: int) -> dict[str, Any]:
    make = CHECK_KNOBS.get(name)
    return make(vocab_size, seq_len, num_kv_pairs) if make else {}


SEED = 20240214  # checks are reproducible: every instance set comes from Generator(PCG64(SEED + point index))


def grid(budget: Budget) -> list[tuple[int, int, int]]:
    """Candidate ``(vocab_size, seq_len, num_kv_pairs)`` points, smallest first."""
    lengths = (8, 16, 32, 64, 128, 256) if budget.full else (8, 16, 32, 64)
    points = []
    for n in lengths:
        for c in (2 * n + 2, 4 * n):
            for d in sorted({1, max(1, n // 8), n // 4}):
                points.append((c, n, d))
    return sorted(points, key=lambda p: (p[1] * p[0], p[1], p[2]))


def _run_grid(
    name: str,
    ctx: CheckContext,
    per_point: Callable[[Any, int, tuple[int, int, int]], dict[str, Any] | None],
) -> tuple[list[tuple[int, int, int]], list[str], dict[str, Any] | None]:
    """Build the construction at grid points in order, call ``per_point(con, index, point)``; stop at the first
    counterexample or when the time share is spent. Returns (points run, skipped reasons, counterexample)."""
    from mqarkit.constructions import build

    ran: list[tuple[int, int, int]] = []
    skipped: list[str] = []
    last = 0.0
    for index, (c, n, d) in enumerate(grid(ctx.budget)):
        if ran and not ctx.can_afford(last):
            break
        t0 = time.perf_counter()
        try:
            con = build(name, vocab_size=c, seq_len=n, num_kv_pairs=d, **knobs_for(name, c, n, d))
        except ValueError as exc:
            skipped.append(f"(c={c}, N={n}, D={d}): {exc}")
            continue
        bad = per_point(con, index, (c, n, d))
        ran.append((c, n, d))
        last = time.perf_counter() - t0
        if bad is not None:
            return ran, skipped, {"vocab_size": c, "seq_len": n, "num_kv_pairs": d, **bad}
    return ran, skipped, None


def _range_text(ran: list[tuple[int, int, int]]) -> str:
    return f"{len(ran)} grid points, {size_ranges(ran)}"


def _knob_note(name: str) -> str:
    c, n, d = 3, 2, 1  # symbolic-looking probe values, only to name the knobs
    keys = list(CHECK_KNOBS[name](c, n, d)) if name in CHECK_KNOBS else []
    return f" (knobs set by CHECK_KNOBS: {', '.join(keys)})" if keys else ""


def _instances_per_point(budget: Budget) -> int:
    return 32 if budget.full else 8


def _check_solves(name: str, ctx: CheckContext, backend: str) -> CheckOutcome:
    n_inst = _instances_per_point(ctx.budget) // (4 if backend == "exact" else 1)
    counts = {"queries": 0, "instances": 0}
    sources: set[str] = set()

    def per_point(con: Any, index: int, point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        inst = draw_instances(c, n, d, n_inst, np.random.default_rng(SEED + index))
        sources.add(inst.source)
        pred = con.predict(inst.inputs, backend=backend)
        mask = inst.labels != IGNORE
        counts["queries"] += int(mask.sum())
        counts["instances"] += n_inst
        wrong = np.argwhere(mask & (pred != inst.labels))
        if len(wrong):
            r, i = (int(v) for v in wrong[0])
            return {
                "inputs": inst.inputs[r].tolist(),
                "position": i,
                "predicted": int(pred[r, i]),
                "expected": int(inst.labels[r, i]),
                "backend": backend,
            }
        return None

    ran, skipped, bad = _run_grid(name, ctx, per_point)
    if not ran:
        return not_run(f"{name}: no grid point inside the claimed range ({len(skipped)} rejected)")
    covered = (
        f"{name}: {counts['instances']} clean instances, {counts['queries']} queries, backend {backend}, "
        f"{_range_text(ran)} (instances from {', '.join(sorted(sources))}){_knob_note(name)}"
    )
    if bad is not None:
        return failed(covered, bad, f"{name}: prediction != oracle label at a query", skipped=skipped)
    return passed(covered, skipped=len(skipped), backend=backend)


def check_solves(name: str, ctx: CheckContext) -> CheckOutcome:
    """Solves MQAR in float64 (every construction supports it)."""
    return _check_solves(name, ctx, "float64")


def check_solves_exact(name: str, ctx: CheckContext) -> CheckOutcome:
    """Solves MQAR under the exact backend (rational arithmetic), where the construction declares one."""
    from mqarkit.constructions import construction_class

    if "exact" not in getattr(construction_class(name), "exact_backends", ()):
        return not_run(f"{name} declares no exact backend (non-polynomial operators); float64 only")
    return _check_solves(name, ctx, "exact")


def check_resources(name: str, ctx: CheckContext) -> CheckOutcome:
    def per_point(con: Any, index: int, point: tuple[int, int, int]) -> dict[str, Any] | None:
        mism = con.resources().mismatches()
        if mism:
            return {"mismatches": {k: {"claimed": v[0], "measured": v[1]} for k, v in mism.items()}}
        return None

    ran, skipped, bad = _run_grid(name, ctx, per_point)
    if not ran:
        return not_run(f"{name}: no grid point inside the claimed range ({len(skipped)} rejected)")
    covered = f"{name}: claimed == measured at {_range_text(ran)}"
    if bad is not None:
        return failed(covered, bad, f"{name}: claimed resources differ from measured ones")
    return passed(covered, skipped=len(skipped))


def check_causal(name: str, ctx: CheckContext) -> CheckOutcome:
    backend = "float64"  # every construction supports it; causality is a property of the operator graph
    cuts = {"count": 0}

    def per_point(con: Any, index: int, point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        rng = np.random.default_rng(SEED + 7919 + index)
        inst = draw_instances(c, n, d, 2, rng)
        base = con.predict(inst.inputs, backend=backend)
        for cut in sorted({2 * d - 1, 2 * d, n // 2, n - 2}):
            changed = inst.inputs.copy()
            changed[:, cut + 1 :] = rng.integers(0, c, size=changed[:, cut + 1 :].shape)
            after = con.predict(changed, backend=backend)
            cuts["count"] += 1
            diff = np.argwhere(after[:, : cut + 1] != base[:, : cut + 1])
            if len(diff):
                r, i = (int(v) for v in diff[0])
                return {"inputs": inst.inputs[r].tolist(), "changed_after": cut, "position": i}
        return None

    ran, skipped, bad = _run_grid(name, ctx, per_point)
    if not ran:
        return not_run(f"{name}: no grid point inside the claimed range ({len(skipped)} rejected)")
    covered = f"{name}: {cuts['count']} cut points (future tokens replaced), {_range_text(ran)}"
    if bad is not None:
        return failed(covered, bad, f"{name}: a prediction depends on a later token")
    return passed(covered)


CHECKS: dict[str, tuple[str, str, Callable[[str, CheckContext], CheckOutcome], float]] = {
    "solves-exact": (
        "property",
        "exact backend: predict == oracle label at every query of clean instances",
        check_solves_exact,
        1.0,
    ),
    "solves": ("property", "float64: predict == oracle label at every query of clean instances", check_solves, 1.0),
    "resources": (
        "exhaustive",
        "claimed resources == measured resources at every grid point run",
        check_resources,
        0.5,
    ),
    "causal": ("property", "predictions at positions <= i ignore every token after i", check_causal, 0.5),
}


@functools.cache
def _cached(name: str, check: str, budget: Budget) -> CheckOutcome:
    """A construction that lists several claims is checked once per budget; the outcome is shared."""
    ctx = CheckContext(budget=budget, share=CHECKS[check][3])
    return CHECKS[check][2](name, ctx)


def clear_cache() -> None:
    _cached.cache_clear()


def constructions_for(claim_id: str) -> list[str]:
    """Registered constructions whose ``claim_ids`` include ``claim_id``."""
    from mqarkit.constructions import construction_class, names

    return [n for n in names() if claim_id in getattr(construction_class(n), "claim_ids", ())]


def construction_checks(claim_id: str, which: tuple[str, ...] = tuple(CHECKS)) -> list[Check]:
    """The generic checks of every construction that lists ``claim_id``. If the constructions cannot be discovered
    (a module fails to import), one failing check carries the error: the claim cannot be vouched for."""
    try:
        found = constructions_for(claim_id)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"

        def _broken(ctx: CheckContext, _e: str = error) -> CheckOutcome:
            return failed("", {"error": _e}, f"discovering constructions raised {_e}")

        return [Check("constructions:discover", "property", "import every construction module", _broken)]
    out = []
    for name in found:
        for check in which:
            kind, description, _, share = CHECKS[check]
            out.append(
                Check(
                    name=f"{name}:{check}",
                    kind=kind,
                    description=f"{name}: {description}",
                    run=functools.partial(lambda ctx, n, c: _cached(n, c, ctx.budget), n=name, c=check),
                    share=share,
                )
            )
    return out
