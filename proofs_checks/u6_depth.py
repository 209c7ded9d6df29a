"""U6 ([B] Thm F.30: the depth lower bound is tight, ``O(max(log log c, log log N))`` BaseConv layers suffice in
some settings), checked for one setting: the data-independent BaseConv construction with sign codes
(``baseconv_data_independent``, ``encoding="sign"``; theory.md §4.4, U4).

The setting verified here (and only this one): fixed filters and weights that depend on ``(c, N, D)`` only, sign codes
of width ``m = ⌈log2 c⌉``, one channel group of width ``2m`` per lag, so the width grows with ``N`` (``d = 2m·|S|``,
``|S| = ⌊(N-1)/2⌋``), and ``c > N`` (the construction's range, the MQARSpec rule). Its depth is
``1 + ⌈log2(m + 1)⌉`` (one gating layer for the ``m`` products ``a_k b_k``, then a product tree over ``m + 1`` affine
factors, the value folded in), a function of ``c`` alone. Since ``m ≤ log2 c + 1``,
``1 + ⌈log2(m + 1)⌉ ≤ 3 + log2 log2 c`` for ``c ≥ 4``: ``O(log log c)``, and because ``c > N`` also
``log log c ≥ log log N``, i.e. ``O(max(log log c, log log N))``. With L2 (``⌈log2(2m)⌉`` layers are necessary for this
encoding) the depth is tight up to one layer (``baseconv_depth`` reports by how much).

What [B] Thm F.30 itself assumes (its encoding, whether its filters may depend on the input, the ``c ≤ N`` regime of
L4 where ``log log N`` dominates) is not reproduced here: the check covers ``c > N`` only, where the ``log log N``
term never dominates, and says so in its covered range.

The check, per ``(c, N, D)`` of a fixed grid (smallest first): build the construction, read
its depth from the built model (``resources().measured.layers``), require it to equal ``1 + ⌈log2(m + 1)⌉``, and run
a few clean instances through ``predict`` (float64) against the task's labels at every query position. It reports
the ratio of the measured depth to ``log2 log2 c`` per point, and requires the explicit bound
``layers <= 3 + log2 log2 c`` derived above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mqarkit.proofs_checks.instances import IGNORE, draw_instances
from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

NAME = "baseconv_data_independent"
INSTANCES_PER_POINT = 4


def code_width(vocab_size: int) -> int:
    """``m = ⌈log2 c⌉`` (at least 1)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
        raise ValueError(f"vocab_size={vocab_size!r}: must be an int >= 2")
    return max(1, (int(vocab_size) - 1).bit_length())


def predicted_depth(vocab_size: int) -> int:
    """``1 + ⌈log2(m + 1)⌉`` with ``m = ⌈log2 c⌉`` (integer arithmetic: ``⌈log2 x⌉ = (x - 1).bit_length()``)."""
    return 1 + code_width(vocab_size).bit_length()  # ⌈log2(m + 1)⌉ = m.bit_length()


def depth_points(full: bool) -> list[tuple[int, int, int]]:
    """``(c, N, D)`` with ``c > N``: ``m`` from 4 to 17 (21 on full), so the depth runs 4, 5, 6; two ``N`` per ``c``
    (three on full: the depth must not move with ``N``); ``D`` up to ``N/4``. Ordered by cost (``N``, then ``c``)."""
    vocabs = (10, 18, 34, 66, 130, 258, 1026, 4098, 65538) + ((2**20 + 2,) if full else ())
    lengths = (8, 16) + ((32,) if full else ())
    points = [(c, n, d) for n in lengths for c in vocabs if c > n for d in sorted({1, n // 4})]
    return sorted(points, key=lambda p: (p[1], p[0], p[2]))


def _default_build(c: int, n: int, d: int) -> Any:
    from mqarkit.constructions import build

    return build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d)


def _seed(point: tuple[int, int, int]) -> int:
    c, n, d = point
    return (c * 131 + n) * 17 + d


def check_depth_loglog(ctx: CheckContext, build: Callable[[int, int, int], Any] | None = None) -> CheckOutcome:
    """See the module docstring. ``build(c, N, D)`` returns a construction (default: the registered one; tests pass
    a broken one to see the check fail)."""
    if build is None:
        build = _default_build
    rows: list[dict[str, Any]] = []

    def step(point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        con = build(c, n, d)
        layers = con.resources().measured.layers
        want = predicted_depth(c)
        loglog = math.log2(math.log2(c))
        inst = draw_instances(c, n, d, INSTANCES_PER_POINT, np.random.default_rng(_seed(point)))
        query = inst.labels != IGNORE
        pred = con.predict(inst.inputs)
        wrong = np.argwhere(query & (pred != inst.labels))
        row = {"c": c, "N": n, "D": d, "m": code_width(c), "layers": layers, "predicted": want,
               "loglog_c": round(loglog, 3), "ratio": round(layers / loglog, 3),
               "queries": int(query.sum())}  # fmt: skip
        rows.append(row)
        if layers != want:
            return {**row, "reason": f"measured depth {layers} != 1 + ceil(log2(m + 1)) = {want}"}
        if layers > 3 + loglog:
            return {**row, "reason": f"measured depth {layers} > 3 + log2 log2 c = {3 + loglog:.3f}"}
        if len(wrong):
            r, i = (int(v) for v in wrong[0])
            return {**row, "reason": "wrong answer", "example": inst.inputs[r].tolist(), "position": i,
                    "got": int(pred[r, i]), "want": int(inst.labels[r, i])}  # fmt: skip
        return None

    ran, bad = run_points(depth_points(ctx.budget.full), step)
    by_m = sorted({(r["m"], r["layers"]) for r in rows})
    ratios = [r["ratio"] for r in rows]
    covered = (
        f"{NAME} (data-independent BaseConv, sign codes, width 2m*floor((N-1)/2) growing with N, c > N only: the "
        f"log log N term never dominates, [B] Thm F.30's own setting not reproduced) at {len(ran)} (c, N, D) points, "
        f"c {min(p[0] for p in ran)}..{max(p[0] for p in ran)}, N {min(p[1] for p in ran)}..{max(p[1] for p in ran)}: "
        f"measured layers == 1 + ceil(log2(m+1)) <= 3 + log2 log2 c for (m, layers) in {by_m}, independent of N; "
        f"layers / log2 log2 c "
        f"in [{min(ratios)}, {max(ratios)}]; {sum(r['queries'] for r in rows)} clean queries answered (float64)"
    )
    if bad is not None:
        return failed(covered, bad, bad["reason"], rows=rows)
    return passed(covered, rows=rows)
