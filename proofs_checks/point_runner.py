"""Run a claim-specific check over its fixed list of points, smallest first.

Claim-specific checks each walk a list of points (sizes, windows, seeds) that depends on the budget's name only, and do
real work at each. :func:`run_points` calls ``step(point)`` in order and stops at the first counterexample; otherwise
every point runs, whatever the clock says, so a check's range is the same on every run. What ran is returned, and each
check states its range from it (:func:`size_ranges` for ``(c, N, D)`` points).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

P = TypeVar("P")


def run_points(
    points: Sequence[P], step: Callable[[P], dict[str, Any] | None]
) -> tuple[list[P], dict[str, Any] | None]:
    """``step(point)`` returns ``None`` (fine) or a counterexample dict. Returns (points run, counterexample)."""
    if not points:
        raise ValueError("points: a check needs at least one point to run")
    ran: list[P] = []
    for point in points:
        bad = step(point)
        ran.append(point)
        if bad is not None:
            return ran, bad
    return ran, None


def size_ranges(ran: Sequence[tuple[int, int, int]]) -> str:
    """The ranges covered by ``(c, N, D)`` points: ``"N lo..hi, c lo..hi, D lo..hi"``."""
    cs, ns, ds = zip(*ran)
    return f"N {min(ns)}..{max(ns)}, c {min(cs)}..{max(cs)}, D {min(ds)}..{max(ds)}"
