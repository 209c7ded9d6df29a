"""Generic checks of any registered construction, through the Construction API alone.

For a construction ``name`` (``mqarkit.constructions.names()``) and each of its knob variants (:data:`VARIANTS`), up to
four checks over a fixed grid of sizes:

- **solves MQAR** (property): on clean instances (zero filler where a construction claims only that:
  :data:`CHECK_FILLERS`), ``predict`` equals the oracle label at every query position, in
  float64, and (``solves-exact``, only for constructions that declare the exact backend) in rational arithmetic;
- **claimed == measured resources** (exhaustive over the grid points that ran): ``resources().mismatches()`` is empty;
- **causal** (property): the prediction at positions ``<= i`` does not change when every token after ``i`` is
  replaced (erratum E2: an unmasked lookup reads future keys).

The grid is fixed candidates ``(c, N, D)`` (:func:`grid`, by budget name). A point runs when the construction accepts
it (``validate_sizes``; a rejected point lies outside its claimed range and is counted as skipped) and its cost, the
claimed dense parameter count (times ``N`` for the exact backend, whose rational arithmetic is far slower), is at most
the budget's :data:`MAX_COST`: a rule on the sizes alone, so the same budget always covers the same points. Points
with ``c``, ``N`` not powers of two are included on purpose (``c = 2N + 2``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from mqarkit.proofs_checks.instances import IGNORE, draw_instances
from mqarkit.proofs_checks.point_runner import size_ranges
from mqarkit.proofs_checks.registry import Budget, Check, CheckContext, CheckOutcome, failed, not_run, passed

# Knobs the generic checks pass to constructions that require them, as functions of the sizes (wiring, one line per
# construction). Each is chosen so that the construction claims to solve *all* of MQAR at that size: a sliding window
# as long as the sequence.
CHECK_KNOBS: dict[str, Callable[[int, int, int], dict[str, Any]]] = {
    "sliding_window": lambda c, n, d: {"window": n},
}

# The filler of the instances the checks draw, where a construction claims less than every clean instance (wiring, one
# line per construction): based_taylor's one-hot regime is exact on zero filler only (a value-range filler repeated
# after near-keys can win under clean filler, as its docstring says).
CHECK_FILLERS: dict[str, str] = {"based_taylor": "zero"}

# Fixed knob variants checked besides a construction's defaults (each variant gets its own generic checks).
VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "attention_onehot": ({"mask": "causal"},),
    "attention_signcode": ({"mask": "causal"},),
    "baseconv_input_dependent": ({"encoding": "sign"}, {"broadcast": "factored"}),
    "baseconv_data_independent": ({"gate": "shared"},),
}

# A grid point runs only if its cost is at most this (per budget name and backend): the claimed dense parameter count
# for float64, that count times N for the exact backend.
MAX_COST = {("default", "float64"): 2_000_000, ("full", "float64"): 10_000_000,
            ("default", "exact"): 100_000, ("full", "exact"): 300_000}  # fmt: skip

SEED = 20240214  # checks are reproducible: every instance set comes from Generator(PCG64(SEED + point index))


def knobs_for(name: str, vocab_size: int, seq_len: int, num_kv_pairs: int) -> dict[str, Any]:
    make = CHECK_KNOBS.get(name)
    return make(vocab_size, seq_len, num_kv_pairs) if make else {}


def variants_of(name: str) -> list[dict[str, Any]]:
    """The knob sets checked for ``name``: its defaults (``{}``) first, then :data:`VARIANTS`."""
    return [{}, *VARIANTS.get(name, ())]


def variant_label(name: str, variant: dict[str, Any]) -> str:
    """``name`` or ``name[k=v,...]``: how a variant's checks are named in the report."""
    return name + ("[" + ",".join(f"{k}={v}" for k, v in sorted(variant.items())) + "]" if variant else "")


def grid(budget: Budget) -> list[tuple[int, int, int]]:
    """Candidate ``(vocab_size, seq_len, num_kv_pairs)`` points, smallest first."""
    lengths = (8, 16, 32, 64) if budget.full else (8, 16, 32)
    points = []
    for n in lengths:
        for c in (2 * n + 2, 4 * n):
            for d in sorted({1, max(1, n // 8), n // 4}):
                points.append((c, n, d))
    return sorted(points, key=lambda p: (p[1] * p[0], p[1], p[2]))


def point_cost(name: str, knobs: dict[str, Any], point: tuple[int, int, int], backend: str) -> int:
    """Claimed dense parameters at ``point``, times ``N`` under the exact backend (raises ``ValueError`` outside the
    construction's range)."""
    from mqarkit.constructions import claimed_resources

    c, n, d = point
    size = claimed_resources(name, vocab_size=c, seq_len=n, num_kv_pairs=d, **knobs).parameters
    return size * n if backend == "exact" else size


def _run_grid(
    name: str,
    variant: dict[str, Any],
    ctx: CheckContext,
    backend: str,
    per_point: Callable[[Any, int, tuple[int, int, int]], dict[str, Any] | None],
) -> tuple[list[tuple[int, int, int]], list[str], dict[str, Any] | None]:
    """Build the construction at every grid point within its range and the budget's cost limit for ``backend``, call
    ``per_point(con, index, point)``; stop at the first counterexample. Returns (points run, skipped reasons,
    counterexample)."""
    from mqarkit.constructions import build

    limit = MAX_COST[(ctx.budget.name, backend)]
    ran: list[tuple[int, int, int]] = []
    skipped: list[str] = []
    for index, (c, n, d) in enumerate(grid(ctx.budget)):
        knobs = {**knobs_for(name, c, n, d), **variant}
        try:
            cost = point_cost(name, knobs, (c, n, d), backend)
        except ValueError as exc:
            skipped.append(f"(c={c}, N={n}, D={d}): {exc}")
            continue
        if cost > limit:
            continue
        con = build(name, vocab_size=c, seq_len=n, num_kv_pairs=d, **knobs)
        bad = per_point(con, index, (c, n, d))
        ran.append((c, n, d))
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


def _check_solves(name: str, variant: dict[str, Any], ctx: CheckContext, backend: str) -> CheckOutcome:
    n_inst = _instances_per_point(ctx.budget) // (4 if backend == "exact" else 1)
    counts = {"queries": 0, "instances": 0}
    label = variant_label(name, variant)

    def per_point(con: Any, index: int, point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        inst = draw_instances(c, n, d, n_inst, np.random.default_rng(SEED + index), CHECK_FILLERS.get(name, "clean"))
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

    ran, skipped, bad = _run_grid(name, variant, ctx, backend, per_point)
    if not ran:
        return not_run(f"{label}: no grid point inside the claimed range and size limit ({len(skipped)} rejected)")
    covered = (
        f"{label}: {counts['instances']} {CHECK_FILLERS.get(name, 'clean')}-filler instances (mqarkit.task, labels == "
        f"an independent oracle), "
        f"{counts['queries']} queries, backend {backend}, {_range_text(ran)}{_knob_note(name)}"
    )
    if bad is not None:
        return failed(covered, bad, f"{label}: prediction != oracle label at a query", skipped=skipped)
    return passed(covered, skipped=len(skipped), backend=backend)


def check_solves(name: str, ctx: CheckContext, variant: dict[str, Any] | None = None) -> CheckOutcome:
    """Solves MQAR in float64 (every construction supports it)."""
    return _check_solves(name, variant or {}, ctx, "float64")


def check_solves_exact(name: str, ctx: CheckContext, variant: dict[str, Any] | None = None) -> CheckOutcome:
    """Solves MQAR under the exact backend (rational arithmetic); only listed for constructions that declare it."""
    return _check_solves(name, variant or {}, ctx, "exact")


def check_resources(name: str, ctx: CheckContext, variant: dict[str, Any] | None = None) -> CheckOutcome:
    variant = variant or {}
    label = variant_label(name, variant)

    def per_point(con: Any, index: int, point: tuple[int, int, int]) -> dict[str, Any] | None:
        mism = con.resources().mismatches()
        if mism:
            return {"mismatches": {k: {"claimed": v[0], "measured": v[1]} for k, v in mism.items()}}
        return None

    ran, skipped, bad = _run_grid(name, variant, ctx, "float64", per_point)
    if not ran:
        return not_run(f"{label}: no grid point inside the claimed range and size limit ({len(skipped)} rejected)")
    covered = f"{label}: claimed == measured at {_range_text(ran)}"
    if bad is not None:
        return failed(covered, bad, f"{label}: claimed resources differ from measured ones")
    return passed(covered, skipped=len(skipped))


def check_causal(name: str, ctx: CheckContext, variant: dict[str, Any] | None = None) -> CheckOutcome:
    variant = variant or {}
    label = variant_label(name, variant)
    backend = "float64"  # every construction supports it; causality is a property of the operator graph
    cuts = {"count": 0}

    def per_point(con: Any, index: int, point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        rng = np.random.default_rng(SEED + 7919 + index)
        inst = draw_instances(c, n, d, 2, rng, CHECK_FILLERS.get(name, "clean"))
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

    ran, skipped, bad = _run_grid(name, variant, ctx, "float64", per_point)
    if not ran:
        return not_run(f"{label}: no grid point inside the claimed range and size limit ({len(skipped)} rejected)")
    covered = f"{label}: {cuts['count']} cut points (future tokens replaced), {_range_text(ran)}"
    if bad is not None:
        return failed(covered, bad, f"{label}: a prediction depends on a later token")
    return passed(covered)


CHECKS: dict[str, tuple[str, str, Callable[..., CheckOutcome]]] = {
    "solves-exact": ("property", "exact backend: predict == oracle label at every query of clean instances",
                     check_solves_exact),
    "solves": ("property", "float64: predict == oracle label at every query of clean instances", check_solves),
    "resources": ("exhaustive", "claimed resources == measured resources at every grid point run", check_resources),
    "causal": ("property", "predictions at positions <= i ignore every token after i", check_causal),
}  # fmt: skip


@functools.cache
def _cached(name: str, variant: tuple[tuple[str, Any], ...], check: str, budget: Budget) -> CheckOutcome:
    """A construction that lists several claims is checked once per budget; the outcome is shared."""
    return CHECKS[check][2](name, CheckContext(budget=budget), dict(variant))


def clear_cache() -> None:
    _cached.cache_clear()


def constructions_for(claim_id: str) -> list[str]:
    """Registered constructions whose ``claim_ids`` include ``claim_id``."""
    from mqarkit.constructions import construction_class, names

    return [n for n in names() if claim_id in getattr(construction_class(n), "claim_ids", ())]


def checks_of(name: str) -> tuple[str, ...]:
    """The generic checks that apply to ``name``: ``solves-exact`` only where the construction declares the exact
    backend (a softmax construction is not polynomial, so there is nothing to run, and nothing is reported)."""
    from mqarkit.constructions import construction_class

    exact = "exact" in getattr(construction_class(name), "exact_backends", ())
    return tuple(c for c in CHECKS if c != "solves-exact" or exact)


def construction_checks(claim_id: str) -> list[Check]:
    """The generic checks of every construction (and variant) that lists ``claim_id``. If the constructions cannot be
    discovered (a module fails to import), one failing check carries the error: the claim cannot be vouched for."""
    try:
        found = [(name, checks_of(name)) for name in constructions_for(claim_id)]
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"

        def _broken(ctx: CheckContext, _e: str = error) -> CheckOutcome:
            return failed("", {"error": _e}, f"discovering constructions raised {_e}")

        return [Check("constructions:discover", "property", "import every construction module", _broken)]
    out = []
    for name, which in found:
        for variant in variants_of(name):
            label = variant_label(name, variant)
            frozen = tuple(sorted(variant.items()))
            for check in which:
                kind, description, _ = CHECKS[check]
                out.append(
                    Check(
                        name=f"{label}:{check}",
                        kind=kind,
                        description=f"{label}: {description}",
                        run=functools.partial(lambda ctx, n, v, c: _cached(n, v, c, ctx.budget), n=name, v=frozen,
                                              c=check),
                    )
                )  # fmt: skip
    return out
