"""Run a claim-specific check over size points, smallest first, until its time share is spent.

Claim-specific checks (U2, U5, U8, U9, U4, E7) each walk a list of points (sizes, windows, seeds) and do real work at
each. :func:`run_points` calls ``step(point)`` in order and stops at the first counterexample, or before a point when
the remaining share would not cover ``factor`` times the last step (sizes grow, so steps grow). The first point always
runs, so a check never passes having done nothing; what ran is returned, and each check states its range from it
(:func:`size_ranges` for ``(c, N, D)`` points).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mqarkit.proofs_checks.registry import CheckContext

P = TypeVar("P")


def run_points(
    ctx: CheckContext, points: Sequence[P], step: Callable[[P], dict[str, Any] | None]
) -> tuple[list[P], dict[str, Any] | None]:
    """``step(point)`` returns ``None`` (fine) or a counterexample dict. Returns (points run, counterexample)."""
    ran: list[P] = []
    last = 0.0
    for point in points:
        if ran and not ctx.can_afford(last):
            break
        t0 = time.perf_counter()
        bad = step(point)
        ran.append(point)
        last = time.perf_counter() - t0
        if bad is not None:
            return ran, bad
    return ran, None


def size_ranges(ran: Sequence[tuple[int, int, int]]) -> str:
    """The ranges covered by ``(c, N, D)`` points: ``"N lo..hi, c lo..hi, D lo..hi"``."""
    cs, ns, ds = zip(*ran)
    return f"N {min(ns)}..{max(ns)}, c {min(cs)}..{max(cs)}, D {min(ds)}..{max(ds)}"
