"""U4 / L2: the data-independent BaseConv construction's measured depth against the L2 lower bound.

L2 ([B] Thm 3.2): a data-independent BaseConv on binary codes of width ``m = ceil(log2 c)`` needs ``ceil(log2(2m))``
layers, because MQAR contains equality of two ``m``-bit tokens (multilinear degree ``2m``) and ``L`` layers reach
degree at most ``2^L``. The construction (``baseconv_data_independent``, ``encoding="sign"``) computes
``EQ(code(x_i), code(x_{i-s})) · code(x_{i-s+1})``: the value is folded into the product tree, so its output has
degree ``2m + 1`` and its depth is ``1 + ceil(log2(m + 1))``.

The check builds the construction at each point and reads, *from the built model*, its layers and degree
(``measured_resources``). It fails if the measured depth is below the bound (that would contradict L2 or the
construction), and states honestly, per point, whether it meets the bound or exceeds it and by how much. Since
``ceil(log2(2m + 1)) = 1 + ceil(log2(m + 1))``, the construction is depth-optimal for the polynomial it computes;
it exceeds L2 by exactly one layer when ``m`` is a power of two (``2m < 2m + 1 <= 2^L`` forces the extra layer), and
meets it otherwise.
"""

from __future__ import annotations

from mqarkit.proofs_checks import lower_bounds as lb
from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

NAME = "baseconv_data_independent"


def depth_points(full: bool) -> list[tuple[int, int, int]]:
    """``(c, N, D)`` with ``c > N`` (the construction's range) and ``m = ceil(log2 c)`` running over 4..9 (10 on
    full), powers of two (4, 8) and not."""
    vocabs = (10, 18, 34, 66, 130, 258) + ((514,) if full else ())
    return [(c, n, d) for c in vocabs for n in (8, 16) if n < c for d in (1, 2)]


def check_depth_vs_l2(ctx: CheckContext) -> CheckOutcome:
    from mqarkit.constructions import build

    rows: list[dict] = []

    def step(point: tuple[int, int, int]) -> dict | None:
        c, n, d = point
        measured = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d).measured_resources()
        m = lb.code_bits(c)
        bound = lb.layers_for_degree(2 * m)
        row = {"c": c, "N": n, "D": d, "m": m, "layers": measured.layers, "L2": bound,
               "excess": measured.layers - bound, "degree": measured.degree,
               "layers_for_own_degree": lb.layers_for_degree(measured.degree) if measured.degree else None}  # fmt: skip
        rows.append(row)
        return row if measured.layers < bound else None

    ran, bad = run_points(depth_points(ctx.budget.full), step)
    meets = sorted({r["m"] for r in rows if r["excess"] == 0})
    above = sorted({(r["m"], r["excess"]) for r in rows if r["excess"] > 0})
    optimal = all(r["layers"] == r["layers_for_own_degree"] for r in rows)
    covered = (
        f"measured layers of {NAME} (sign codes) at {len(ran)} (c, N, D) points, m = "
        f"{min(r['m'] for r in rows)}..{max(r['m'] for r in rows)}: meets L2's ceil(log2(2m)) for m in {meets}; "
        f"exceeds it for (m, extra layers) in {above}; layers "
        f"{'==' if optimal else '!='} ceil(log2(measured degree 2m+1)) at every point"
    )
    if bad is not None:
        return failed(covered, bad, "the construction has fewer layers than the L2 lower bound", rows=rows)
    return passed(covered, rows=rows)
